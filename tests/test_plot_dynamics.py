"""The training-dynamics PNG (``python -m trainer.plot_dynamics``) from a run's metrics.jsonl."""
import json

from trainer.plot_dynamics import main, moving_average


def test_moving_average_is_centred_and_shrinks_at_the_ends():
    assert moving_average([0, 3, 6, 9], 3) == [1.5, 3.0, 6.0, 7.5]
    assert moving_average([2, 4], 1) == [2, 4]


def test_plot_from_metrics_jsonl(tmp_path, capsys):
    rows = [{"step": s, "reward/mean": -1 + s / 10, "reward/accuracy": s / 20, "reward/no_answer_rate": 1 - s / 10,
             "response/length_mean": 200 - s, "response/truncated_frac": 0.5, "response/reflection_rate": 0.01 * s}
            for s in range(1, 9)]
    rows[-1]["eval/heldout/pass@1"] = 0.3
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(tmp_path), "--window", "3"]) == 0
    png = tmp_path / "dynamics.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert main([str(tmp_path / "empty")]) == 2
