"""training/loss_curve.py: the binned loss table read back from tensorboard event files."""

import pytest

pytest.importorskip("tensorboard", reason="loss_curve reads tensorboard logs: install the [train] extra")

from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from training.loss_curve import binned_table, main, read_losses  # noqa: E402


def _write_run(folder, steps, offset=0.0):
    writer = SummaryWriter(str(folder))
    for step in steps:
        writer.add_scalar("loss/denoising", 1.0 / step + offset, step)
        writer.add_scalar("loss/clarity", 0.5, step)
        writer.add_scalar("lr", 1e-4, step)
    writer.close()


def test_bins_average_each_loss_and_ignore_other_scalars(tmp_path):
    _write_run(tmp_path / "logs" / "first", range(1, 11))
    losses = read_losses(str(tmp_path))
    assert sorted(losses) == ["clarity", "denoising"]
    table = binned_table(losses, bins=2).splitlines()
    assert table[0] == "| steps | clarity | denoising |"
    first = sum(1.0 / step for step in range(1, 6)) / 5
    assert table[2] == f"| 1-5 | 0.5000 | {first:.4f} |"
    assert table[3].startswith("| 6-10 | 0.5000 |")


def test_a_resumed_run_overrides_the_steps_it_repeats(tmp_path):
    _write_run(tmp_path / "a", range(1, 7))
    _write_run(tmp_path / "b", range(5, 9), offset=10.0)  # resumed from step 4: steps 5-8 logged again
    steps, values = read_losses(str(tmp_path))["denoising"]
    assert steps.tolist() == list(range(1, 9))
    assert values[3] == pytest.approx(0.25) and values[4] == pytest.approx(10.2)


def test_main_prints_the_table_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (the [benchmarks] extra)")
    _write_run(tmp_path, range(1, 21))
    table = main([str(tmp_path), "--bins", "4", "--plot", str(tmp_path / "loss.png")])
    assert table in capsys.readouterr().out
    assert len(table.splitlines()) == 6
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_a_folder_without_logs_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        read_losses(str(tmp_path))


def test_runs_side_by_side_with_their_validation_metrics(tmp_path, capsys):
    from training.compare_runs import main as compare_main

    for name, offset in (("wide", 0.0), ("narrow", 0.5)):
        writer = SummaryWriter(str(tmp_path / name / "logs"))
        for step in range(1, 13):
            writer.add_scalar("loss/total", 1.0 / step + offset, step)
        for step in (6, 12):
            writer.add_scalar("validation/Qabf", 0.3 + step / 100 - offset / 10, step)
            writer.add_scalar("validation/SSIM", 0.5, step)
        writer.close()
    tables = compare_main([str(tmp_path / "wide"), str(tmp_path / "narrow"), "--bins", "2"])
    assert tables in capsys.readouterr().out
    lines = tables.splitlines()
    assert lines[0] == "| run | parameters (M) | s/step | loss 1-6 | loss 7-12 |"
    first, second = (sum(1.0 / step for step in steps) / 6 for steps in (range(1, 7), range(7, 13)))
    assert lines[2].startswith("| wide | ? | ") and lines[2].endswith(f"| {first:.4f} | {second:.4f} |")
    assert "| run | step | hours | Qabf | SSIM |" in lines
    assert "| narrow | 12 | " in tables and tables.count("| wide | ") == 3  # a loss row and two validation rows
