"""Third stage (lentiMPRA, DeepSTARR): split forms, the mpra processing, per-task metrics, test-split scoring."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from src.datamodules.datamodule import BatchRequest, PrixFixeDataModule
from src.datamodules.processing.mpra import MpraProcessing
from src.datamodules.readers import read_table
from src.datamodules.splits import find_split_files, read_source
from src.errors import ConfigError, DataError
from src.lit_modules.objectives import RegressionObjective, SoftBinObjective
from tests.helpers import FAST, SHARED_DATA, compose_cfg, shared_file

STARR_COLUMNS = ["Dev_log2_enrichment", "Hk_log2_enrichment"]
STARR_READER = partial(read_table, sequence_column="Sequence", target_columns=STARR_COLUMNS, id_column="ID")
MPRA_READER = partial(read_table, sequence_column="seq", target_columns=["mean_value"], id_column="seq_id")


def rows_in(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines()[1:] if line.strip())


def datamodule(path: Path, reader, seq_len: int, marker: str, **kwargs) -> PrixFixeDataModule:
    source = partial(read_source, path=path, reader=reader)
    return PrixFixeDataModule(source, MpraProcessing(seq_len, marker), batch_size=8, **kwargs)


# ----------------------------------------------------------------------------- synthetic files


def random_seq(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), n))


def write_starr(path: Path, n: int, sets: list[str], seed: int = 0, length: int = 12) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["seqnames\tID\tset\tSequence\tDev_log2_enrichment\tHk_log2_enrichment"]
    for i in range(n):
        strand = "-" if i % 3 == 0 else "+"
        lines.append(
            f"chr2L\tchr2L_{i}_{i + length}_{strand}_peak\t{sets[i % len(sets)]}\t{random_seq(rng, length)}"
            f"\t{rng.normal():.4f}\t{rng.normal():.4f}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_mpra(path: Path, n: int, folds: int = 10, seed: int = 0, length: int = 12) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["seq_id\tseq\tmean_value\tfold"]
    for i in range(n):
        name = f"seq{i}_Reversed:" if i % 2 else f"seq{i}_F"
        lines.append(f"{name}\t{random_seq(rng, length)}\t{rng.normal():.3f}\t{i % folds}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_folder_split_synthetic(tmp_path: Path) -> None:
    for name, n in (("my_train.tsv", 30), ("my_valid.tsv", 10), ("my_test.tsv", 12)):
        write_starr(tmp_path / name, n, ["Train"], seed=n)
    dm = datamodule(tmp_path, STARR_READER, 12, "_-_")
    dm.setup()
    assert dm.split_form == "folder"
    assert (dm.train_set.n_sequences, dm.val_set.n_sequences, dm.test_set.n_sequences) == (30, 10, 12)


def test_folder_split_names_from_config_and_ambiguity(tmp_path: Path) -> None:
    write_starr(tmp_path / "a.tsv", 20, ["Train"])
    write_starr(tmp_path / "b.tsv", 8, ["Train"], seed=1)
    found = find_split_files(tmp_path, {"train": "a.tsv", "val": "b.tsv"})
    assert found == {"train": tmp_path / "a.tsv", "val": tmp_path / "b.tsv"}
    with pytest.raises(ConfigError, match="no train file"):
        find_split_files(tmp_path)
    write_starr(tmp_path / "train_1.tsv", 5, ["Train"])
    write_starr(tmp_path / "train_2.tsv", 5, ["Train"])
    with pytest.raises(ConfigError, match=r"2 files look like the train split.*data.split_files.train"):
        find_split_files(tmp_path)


def test_split_column_synthetic(tmp_path: Path) -> None:
    path = write_starr(tmp_path / "all.tsv", 40, ["Train", "Train", "Val", "Test"])
    reader = partial(STARR_READER, split_column="set")
    dm = datamodule(path, reader, 12, "_-_")
    dm.setup()
    assert dm.split_form == "column"
    assert (dm.train_set.n_sequences, dm.val_set.n_sequences, dm.test_set.n_sequences) == (20, 10, 10)
    # rows keep their own file lines (the header is line 1)
    assert dm.split_records["val"].lines.tolist() == [4 * k + 4 for k in range(10)]


def test_split_column_bad_value_and_missing_validation(tmp_path: Path) -> None:
    reader = partial(STARR_READER, split_column="set")
    bad = write_starr(tmp_path / "bad.tsv", 8, ["Train", "Val", "Holdout", "Test"])
    with pytest.raises(DataError, match=r"bad.tsv:4: split column value 'Holdout'"):
        datamodule(bad, reader, 12, "_-_").setup()
    only_train = write_starr(tmp_path / "only.tsv", 8, ["Train"])
    with pytest.raises(DataError, match=r"no val rows \(values: Train\).*data.split=hash"):
        datamodule(only_train, reader, 12, "_-_").setup()
    dm = datamodule(only_train, reader, 12, "_-_", split="hash", n_folds=2)
    dm.setup()
    assert dm.split_form == "hash" and dm.test_set is None


def test_fold_column_synthetic(tmp_path: Path) -> None:
    path = write_mpra(tmp_path / "all.tsv", 100)
    reader = partial(MPRA_READER, fold_column="fold")
    dm = datamodule(path, reader, 12, "_Reversed:", test_fold=3, fold_val=7)
    dm.setup()
    assert dm.split_form == "fold"
    assert (dm.train_set.n_sequences, dm.val_set.n_sequences, dm.test_set.n_sequences) == (80, 10, 10)
    assert set(dm.split_records["test"].folds.tolist()) == {3}
    assert set(dm.split_records["val"].folds.tolist()) == {7}
    with pytest.raises(ConfigError, match="both 2; they must differ"):
        datamodule(path, reader, 12, "_Reversed:", test_fold=2, fold_val=2).setup()
    with pytest.raises(ConfigError, match=r"data.test_fold=12: .* holds folds"):
        datamodule(path, reader, 12, "_Reversed:", test_fold=12, fold_val=1).setup()


def test_one_override_sweeps_every_ordered_fold_pair(tmp_path: Path) -> None:
    """``data.fold_pair=0..89`` maps one-to-one onto the 90 ordered (test k, validation j) pairs, k != j."""
    from omegaconf import OmegaConf

    from src.datamodules.splits import ordered_fold_pair
    from src.errors import EXIT_USER_ERROR, exit_code, user_message

    pairs = [ordered_fold_pair(p, 10) for p in range(90)]
    assert len(set(pairs)) == 90 and all(k != j for k, j in pairs)
    assert set(pairs) == {(k, j) for k in range(10) for j in range(10) if k != j}
    assert pairs[0] == (0, 1) and pairs[9] == (1, 0) and pairs[37] == (4, 1) and pairs[89] == (9, 8)
    cfg = compose_cfg(["data=human_mpra", "data.path=x", "data.fold_pair=37"])
    assert (cfg.datamodule.test_fold, cfg.datamodule.fold_val) == (4, 1)  # what the datamodule receives
    cfg = compose_cfg(["data=human_mpra", "data.path=x"])  # no pair: the configured folds
    assert (cfg.datamodule.test_fold, cfg.datamodule.fold_val) == (0, 1)
    path = write_mpra(tmp_path / "all.tsv", 100)
    dm = datamodule(path, partial(MPRA_READER, fold_column="fold"), 12, "_Reversed:", test_fold=4, fold_val=1)
    dm.setup()
    assert set(dm.split_records["test"].folds.tolist()) == {4} and set(dm.split_records["val"].folds.tolist()) == {1}
    for bad in ("90", "-1"):  # one line naming the key, exit status 2
        with pytest.raises(Exception) as err:
            OmegaConf.resolve(compose_cfg(["data=human_mpra", "data.path=x", f"data.fold_pair={bad}"]))
        assert user_message(err.value) == f"data.fold_pair={bad}: must be an integer in 0..89 (10 folds)"
        assert exit_code(err.value) == EXIT_USER_ERROR


def test_leaderboard_reports_mean_and_sd_over_fold_pairs(tmp_path: Path) -> None:
    from src.sweep.ledger import LEDGER_NAME, append_record, make_record
    from src.sweep.summarize import summarize

    values = {"bhi": [0.60, 0.64, 0.68], "resnet": [0.50, 0.50, 0.53]}
    for final, pearsons in values.items():
        for pair, value in enumerate(pearsons):
            overrides = {"first": "bhi", "core": "bhi", "final": final, "data.fold_pair": pair, "seed": 0}
            record = make_record(overrides=overrides, status="ok", metrics={"test/pearson": value, "val/pearson": 1})
            append_record(tmp_path / LEDGER_NAME, record)
    result = summarize(tmp_path, metric="test/pearson")
    best = result["rows"][0]
    assert best["final"] == "bhi" and best["n_seeds"] == 3 and best["n_fold_pairs"] == 3
    assert best["test/pearson_mean"] == pytest.approx(0.64) and best["test/pearson_sd"] == pytest.approx(0.04)
    assert "data.fold_pair" not in best["config"]  # a replicate, not a setting: one row per configuration
    assert "over runs: up to 3 ordered fold pairs" in result["markdown"] and "| n_runs |" in result["markdown"]


def test_hash_split_without_split_columns(tmp_path: Path) -> None:
    path = write_mpra(tmp_path / "plain.tsv", 60)  # the reader is not told about the fold column
    dm = datamodule(path, MPRA_READER, 12, "_Reversed:", n_folds=5)
    dm.setup()
    assert dm.split_form == "hash" and dm.test_set is None
    assert dm.train_set.n_sequences + dm.val_set.n_sequences == 60
    with pytest.raises(ConfigError, match="data.split=fold: .* has no fold column"):
        datamodule(path, MPRA_READER, 12, "_Reversed:", split="fold").setup()


# ----------------------------------------------------------------------------- shared samples


@pytest.mark.parametrize("dataset", ["human_mpra", "drosophila_starr"])
def test_folder_split_on_shared_samples(dataset: str) -> None:
    folder = shared_file(dataset)
    cfg = compose_cfg([f"data={dataset}", f"data.path={folder}", "experiment=dream_cnn"])
    from src.train_task import build_datamodule, build_module

    module = build_module(cfg)
    assert module.processing.name == "mpra" and module.processing.seq_len == cfg.data.seq_len
    dm = build_datamodule(cfg, module)
    dm.setup()
    files = find_split_files(folder)
    assert dm.split_form == "folder"
    assert dm.train_set.n_sequences == rows_in(files["train"])
    assert dm.val_set.n_sequences == rows_in(files["val"])
    assert dm.test_set.n_sequences == rows_in(files["test"])
    batch = dm.train_set.__getitems__(BatchRequest(np.arange(4), 0))
    assert tuple(batch["x"].shape) == (4, 5, cfg.data.seq_len)


def test_fold_column_on_shared_lentimpra_sample() -> None:
    path = shared_file("human_mpra", "sample_train.txt")
    cfg = compose_cfg(["data=human_mpra", f"data.path={path}", "data.test_fold=4", "data.val_fold=2"])
    from src.train_task import build_datamodule, build_module

    dm = build_datamodule(cfg, build_module(cfg))
    dm.setup()
    folds = np.array([int(line.split("\t")[3]) for line in path.read_text().splitlines()[1:]])
    assert dm.split_form == "fold"
    assert dm.test_set.n_sequences == int((folds == 4).sum())
    assert dm.val_set.n_sequences == int((folds == 2).sum())
    assert dm.train_set.n_sequences == int(((folds != 4) & (folds != 2)).sum())


def test_split_column_on_shared_deepstarr_sample_names_the_fix() -> None:
    path = shared_file("drosophila_starr", "sample_train.txt")  # its `set` column says Train on every row
    cfg = compose_cfg(["data=drosophila_starr", f"data.path={path}"])
    from src.train_task import build_datamodule, build_module

    module = build_module(cfg)
    with pytest.raises(DataError, match="no val rows"):
        build_datamodule(cfg, module).setup()
    cfg = compose_cfg(["data=drosophila_starr", f"data.path={path}", "data.split=hash"])
    dm = build_datamodule(cfg, build_module(cfg))
    dm.setup()
    assert dm.train_set.n_sequences + dm.val_set.n_sequences == rows_in(path)


@pytest.mark.parametrize(("dataset", "marker"), [("human_mpra", "_Reversed:"), ("drosophila_starr", "_-_")])
def test_reverse_flag_follows_the_id_rule(dataset: str, marker: str) -> None:
    folder = shared_file(dataset)
    cfg = compose_cfg([f"data={dataset}", f"data.path={folder}"])
    from src.train_task import build_datamodule, build_module

    dm = build_datamodule(cfg, build_module(cfg))
    dm.setup()
    for name, dataset_ in (("train", dm.train_set), ("test", dm.test_set)):
        ids = dm.split_records[name].ids
        expected = np.array([marker in i for i in ids], dtype=np.uint8)
        assert 0 < expected.sum() < len(expected)
        np.testing.assert_array_equal(dataset_.extras["reverse"][dataset_.rows].numpy(), expected)
        batch = dataset_.__getitems__(BatchRequest(np.arange(8), 0))
        assert batch["x"].shape == (8, 5, cfg.data.seq_len)
        np.testing.assert_array_equal(batch["x"][:, 4, 0].numpy(), expected[:8])
        assert torch.all(batch["x"][:, 4] == batch["x"][:, 4, :1])  # constant along the read


# ----------------------------------------------------------------------------- length policy


def test_mpra_processing_never_crops_or_pads(tmp_path: Path) -> None:
    path = write_mpra(tmp_path / "m.tsv", 30, length=12)
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace("\t", "\tAC", 1)  # line 6: a 14-nt read
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"m.tsv:6: sequence of 14 nt is longer than processing.seq_len=12"):
        datamodule(path, MPRA_READER, 12, "_Reversed:", n_folds=3).setup()
    with pytest.raises(DataError, match=r"m.tsv:2: sequence of 12 nt is shorter than processing.seq_len=13"):
        datamodule(path, MPRA_READER, 13, "_Reversed:", n_folds=3).setup()


def test_processing_length_defaults_to_the_data_sets() -> None:
    for dataset, length in (("human_mpra", 230), ("drosophila_starr", 249)):
        for preset in ([], ["experiment=dream_rnn"], ["experiment=dream_attn"]):
            cfg = compose_cfg([f"data={dataset}", *preset])
            assert cfg.processing.name == "mpra" and cfg.processing.seq_len == length
    assert compose_cfg(["experiment=dream_cnn", "data=dream"]).processing.name == "autosome"
    assert compose_cfg([]).processing.name == "autosome"


def test_mpra_reverse_complement_flips_the_orientation_flag() -> None:
    proc = MpraProcessing(6, "_R")
    fields = {"codes": torch.tensor([[0, 1, 2, 3, 4, 0]], dtype=torch.uint8), "reverse": torch.tensor([1])}
    x = proc.make_batch(fields, torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), False)["x"]
    assert x[0, :4, 4].tolist() == [0.25] * 4  # N
    rc = proc.reverse_complement(x)
    assert rc[0, 4].tolist() == [0.0] * 6
    assert torch.equal(proc.reverse_complement(rc), x)


# ----------------------------------------------------------------------------- objectives and metrics


def test_soft_bins_rebin_non_yeast_targets_and_leave_dream_alone() -> None:
    objective = SoftBinObjective(rescale="none")  # DREAM's declaration (data.soft_bins)
    dream = torch.tensor([[0.0], [17.0], [3.5]])
    objective.fit(dream)
    assert not objective.rescaled and torch.equal(objective.to_bins(dream), dream)
    objective = SoftBinObjective(rescale="fit")  # lentiMPRA's and DeepSTARR's
    y = torch.tensor([[-2.0, 1.0], [4.0, 3.0], [1.0, 2.0]])
    objective.fit(y)
    assert objective.rescaled
    bins = objective.to_bins(y)
    assert torch.allclose(bins.min(0).values, torch.zeros(2)) and torch.allclose(
        bins.max(0).values, torch.full((2,), 17.0)
    )
    # a head that puts all mass on bin k predicts low + k / 17 * span: the extremes come back exactly
    head = torch.full((3, 2, 18), -1e4)
    head.scatter_(2, bins.round().long().unsqueeze(-1), 0.0)
    expected = bins.round() / 17 * torch.tensor([6.0, 2.0]) + torch.tensor([-2.0, 1.0])
    assert torch.allclose(objective.predict(head), expected, atol=1e-4)
    assert torch.allclose(objective.predict(head)[:2], y[:2], atol=1e-4)


def test_loss_is_summed_over_tasks() -> None:
    torch.manual_seed(0)
    y = torch.randn(16, 2)
    for objective in (RegressionObjective("mse"), SoftBinObjective(rescale="fit")):
        objective.fit(y)
        head = torch.randn(16, 2, objective.outputs_per_target)
        per_task = []
        for t in range(2):
            single = type(objective)(**({"loss": "mse"} if isinstance(objective, RegressionObjective) else {}))
            single.load_state_dict({k: v[t : t + 1] if len(v) == 2 else v for k, v in objective.state_dict().items()})
            per_task.append(single.loss(head[:, t : t + 1], y[:, t : t + 1]))
        assert torch.allclose(objective.loss(head, y), sum(per_task), rtol=1e-5)


def test_per_task_metric_names_and_values_equal_scipy() -> None:
    cfg = compose_cfg(["data=drosophila_starr", "data.path=unused", "first=bhi", "core=resnet", "final=resnet"])
    cfg.first.block.out_channels = 4
    cfg.core.block.widths = [4, 4, 4, 4]
    cfg.core.block.depths = [1, 1, 1, 1]
    from src.train_task import build_module

    module = build_module(cfg)
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    module.val_metrics.update(torch.tensor(pred, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    values = {k: float(v) for k, v in module.named_metrics(module.val_metrics.compute()).items()}
    for t, task in enumerate(["Dev", "Hk"]):
        assert values[f"val/pearson_{task}"] == pytest.approx(stats.pearsonr(pred[:, t], y[:, t])[0], abs=1e-5)
        assert values[f"val/spearman_{task}"] == pytest.approx(stats.spearmanr(pred[:, t], y[:, t])[0], abs=1e-5)
        assert values[f"val/mse_{task}"] == pytest.approx(np.mean((pred[:, t] - y[:, t]) ** 2), rel=1e-5)
    assert values["val/pearson"] == pytest.approx((values["val/pearson_Dev"] + values["val/pearson_Hk"]) / 2)


# ----------------------------------------------------------------------------- test split after training


@pytest.mark.skipif(not (SHARED_DATA / "drosophila_starr").exists(), reason="shared DeepSTARR sample absent")
def test_test_split_is_scored_with_the_best_checkpoint(tmp_path: Path) -> None:
    from src.checkpoint import load_module
    from src.train_task import train

    overrides = [
        "data=drosophila_starr",
        f"data.path={SHARED_DATA / 'drosophila_starr'}",
        "first=bhi",
        "core=resnet",
        "final=autosome",
        "first.block.out_channels=8",
        "core.block.widths=[8,8,8,8]",
        "core.block.depths=[1,1,1,1]",
        "recipe.epochs=3",
        "recipe.batch_size=64",
        "recipe.steps_per_epoch=4",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    summary = train(compose_cfg(overrides, run_dir=tmp_path))
    best, last = summary["best_checkpoint"], summary["last_checkpoint"]
    assert summary["test_checkpoint"] == best
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    names = {f"test/{m}{s}" for m in ("pearson", "spearman", "mse") for s in ("", "_Dev", "_Hk")}
    assert names <= set(metrics)
    # the reported numbers are the best checkpoint's, recomputed independently with scipy
    table = np.loadtxt(tmp_path / "test_predictions.tsv", delimiter="\t", skiprows=1, usecols=(1, 2, 3, 4))
    head = (tmp_path / "test_predictions.tsv").read_text().splitlines()[0].split("\t")
    assert head == ["sequence", "Dev", "Hk", "prediction_Dev", "prediction_Hk"]
    for t, task in enumerate(["Dev", "Hk"]):
        assert metrics[f"test/pearson_{task}"] == pytest.approx(
            stats.pearsonr(table[:, 2 + t], table[:, t])[0], abs=1e-4
        )
    from src.train_task import build_datamodule

    cfg = compose_cfg(overrides, run_dir=tmp_path)
    dm = build_datamodule(cfg, load_module(best))
    dm.setup()
    best_scores, _, _ = load_module(best).score_split(dm.test_dataloader())
    last_scores, _, _ = load_module(last).score_split(dm.test_dataloader())
    assert best_scores["test/pearson"] == pytest.approx(metrics["test/pearson"], abs=1e-6)
    assert "epoch002" not in Path(best).name  # the best epoch is not the last here, so the check can fail
    assert last_scores["test/pearson"] != pytest.approx(metrics["test/pearson"], abs=1e-6)
    csv_logs = list(tmp_path.rglob("metrics.csv"))
    assert csv_logs and "test/pearson_Dev" in csv_logs[0].read_text().splitlines()[0]


# ----------------------------------------------------------------------------- transfer and freezing

TINY_RNN = ["experiment=dream_rnn", "first.block.out_channels=8", "core.block.hidden=8", "core.block.out_channels=8"]
TINY_CNN = ["experiment=dream_cnn", "first.block.out_channels=8", "core.block.stage_widths=[8,8]"]


def test_transfer_copies_first_and_core_and_rebuilds_the_final(tmp_path: Path, caplog) -> None:
    import logging

    from src.checkpoint import transfer_from_checkpoint
    from src.train_task import build_module

    torch.manual_seed(1)
    yeast = build_module(compose_cfg([*TINY_RNN, "data=dream", "data.path=unused"]))  # 6 x 150, 1 target
    path = tmp_path / "yeast.ckpt"
    torch.save({"state_dict": yeast.state_dict()}, path)
    torch.manual_seed(2)
    fly = build_module(compose_cfg([*TINY_RNN, "data=drosophila_starr", "data.path=unused"]))  # 5 x 249, 2 targets
    fresh = {k: v.clone() for k, v in fly.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="src.checkpoint"):
        report = transfer_from_checkpoint(fly, path)
    source, after = yeast.state_dict(), fly.state_dict()
    for name, value in after.items():
        if name.startswith(("net.first.", "net.core.")):
            if source[name].shape == value.shape:
                assert torch.equal(value, source[name]), name
            else:  # the first conv: 6 yeast input channels (A C G T strand singleton) -> 5 (A C G T orientation)
                assert source[name].shape[1] == 6 and value.shape[1] == 5
                assert torch.equal(value, source[name][:, :5]), name
        elif name.startswith("net.final."):
            assert torch.equal(value, fresh[name]), name  # the whole final block keeps its fresh weights
    assert report.channels and all(n.startswith("net.first.") for n in report.channels)
    assert {n.split(".")[1] for n in report.fresh} == {"final"}
    assert "final block net.final re-initialised" in caplog.text
    assert "input channels 0-4 of 6 copied into 5" in caplog.text


def test_frozen_blocks_get_no_gradient_and_keep_batchnorm_statistics(tmp_path: Path) -> None:

    from src.train_task import build_module, train

    module = build_module(compose_cfg([*TINY_CNN, "freeze=[first,core]"]))
    module.train()
    assert not module.net.first.training and not module.net.core.training and module.net.final.training
    batch = {"x": torch.randn(4, 6, 150), "y": torch.rand(4, 1) * 17}
    module.training_step(batch, 0).backward()
    assert all(p.grad is None for p in [*module.net.first.parameters(), *module.net.core.parameters()])
    assert all(p.grad is not None for p in module.net.final.parameters())

    cfg = compose_cfg([*TINY_CNN, *FAST, "freeze=[first,core]", "recipe.steps_per_epoch=3"], run_dir=tmp_path)
    torch.manual_seed(0)
    before = build_module(cfg).state_dict()
    summary = train(cfg)
    after = torch.load(summary["last_checkpoint"], weights_only=True)["state_dict"]
    for name, value in before.items():
        if name.startswith(("net.first.", "net.core.")):  # weights and BatchNorm running statistics alike
            assert torch.equal(after[name], value), name
    assert any(not torch.equal(after[n], v) for n, v in before.items() if n.startswith("net.final."))
    assert summary["params"] == sum(p.numel() for p in module.net.final.parameters())


def test_freeze_key_is_checked() -> None:
    from src.train_task import build_module

    with pytest.raises(ConfigError, match=r"freeze: unknown block\(s\) \['head'\]"):
        build_module(compose_cfg([*TINY_CNN, "freeze=[head]"]))


@pytest.mark.parametrize(("preset", "length", "targets"), [("transfer_human", 230, 1), ("transfer_drosophila", 249, 2)])
def test_transfer_presets_compose(preset: str, length: int, targets: int) -> None:
    from src.train_task import build_module

    cfg = compose_cfg([f"experiment={preset}", "data.path=unused", "init_from=x.ckpt"])
    assert cfg.first.name == "bhi" and cfg.core.name == "bhi" and cfg.init_from_partial
    module = build_module(cfg)
    assert module.processing.name == "mpra" and module.processing.seq_len == length
    assert module.net.report[-1].out_shape == (targets, 18)


def test_leaderboard_shows_test_metrics_only_when_runs_report_them(tmp_path: Path) -> None:
    from src.sweep.ledger import LEDGER_NAME, append_record, make_record
    from src.sweep.summarize import build_leaderboard, leaderboard_markdown

    ledger = tmp_path / LEDGER_NAME
    for seed, value in enumerate((0.5, 0.7)):
        overrides = {"first": "bhi", "core": "bhi", "final": "autosome", "seed": seed}
        metrics = {"val/pearson": value, "test/pearson": value - 0.1, "test/pearson_Dev": value}
        append_record(ledger, make_record(overrides=overrides, status="ok", metrics=metrics, params=10, seconds=1.0))
    from src.sweep.ledger import read_ledger

    rows, others = build_leaderboard(read_ledger(ledger))
    assert rows[0]["test/pearson_mean"] == pytest.approx(0.5) and rows[0]["test/pearson_n"] == 2
    text = leaderboard_markdown(rows, others, "val/pearson")
    assert "test/pearson" in text and "0.5000 ± 0.1414" in text
    assert "test/spearman" not in text  # no run reported it: no empty column
    rows, others = build_leaderboard(read_ledger(ledger), metric="test/pearson")
    assert rows[0]["rank"] == 1


def test_transfer_preset_names_the_missing_checkpoint(tmp_path: Path) -> None:
    from src.train_task import train

    cfg = compose_cfg(["experiment=transfer_human", "data.path=unused"], run_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match=r"missing required config value init_from: .*init_from=<.ckpt>"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_prediction_reads_the_orientation_flag_from_fasta_ids() -> None:
    from src.inference import prepare_sequences

    proc = MpraProcessing(6, "_Reversed:")
    fields = prepare_sequences(proc, ["ACGTAC", "GGGCCC"], ids=["seq1_F", "seq2_Reversed:"])
    assert fields["reverse"].tolist() == [0, 1]
    with pytest.raises(DataError, match=r"<sequences>:2: sequence of 5 nt is shorter than processing.seq_len=6"):
        prepare_sequences(proc, ["ACGTAC", "GGGCC"])
