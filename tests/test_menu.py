"""The menu: every first x core x final combination (families read from conf/first), presets, recipe schedules."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from src.blocks.base import count_params
from src.datamodules.encoding import encode_array
from src.train_task import build_module
from tests.helpers import COMBINATIONS, CONF_DIR, FAST, PROCESSINGS, SAMPLE, SHORT, SHRINK, TEAMS, compose_cfg

# the block families: one conf/first/<team>.yaml each, so a new family is never left out of these tests


def combo_cfg(first: str, core: str, final: str, processing: str, extra: list[str] | None = None):
    overrides = [f"first={first}", f"core={core}", f"final={final}", f"processing={processing}", "logger=none"]
    overrides += SHRINK["first", first] + SHRINK["core", core] + SHRINK["final", final]
    if processing in SHORT:
        overrides.append(f"processing.seq_len={SHORT[processing]}")
    if processing == "sysu":
        overrides += ["processing.flank=20", "processing.mask_ratio=0.15"]  # masked-token term exercised
    return compose_cfg(overrides + list(extra or []))


def random_batch(module, n: int = 3) -> dict[str, torch.Tensor]:
    """Raw 100-nt reads through the module's own processing (prepare + make_batch)."""
    proc = module.processing
    g = torch.Generator().manual_seed(0)
    reads = ["".join("ACGT"[int(i)] for i in torch.randint(0, 4, (100,), generator=g)) for _ in range(n)]
    codes, lengths = encode_array(reads)
    fields = {k: torch.from_numpy(v) for k, v in proc.prepare(codes, lengths).items()}
    y = torch.tensor([[2.0], [9.5], [14.0]])[:n]
    view = torch.arange(n) % proc.train_views
    return proc.make_batch(fields, y, view, train=True, generator=g)


def optimizer_step(first: str, core: str, final: str, processing: str) -> None:
    """Compose the tiny combination, take one training step (forward, backward, update) on 3 reads."""
    module = build_module(combo_cfg(first, core, final, processing, ["recipe.rc_conjoined=true"]))
    batch = random_batch(module)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() outside a Trainer
        loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.net.first.parameters())
    optimizer.step()


def test_team_lists_come_from_the_configs() -> None:
    assert len(TEAMS) >= 8 and {"autosome", "camformers", "metformin", "nad", "sysu"} <= set(TEAMS)
    for group in ("core", "final"):
        assert sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")) == TEAMS  # every family has all three
    assert set(SHRINK) == {(role, team) for role in ("first", "core", "final") for team in TEAMS}
    assert len(SAMPLE) == len(set(SAMPLE)) == 24


@pytest.mark.slow
@pytest.mark.parametrize(("first", "core", "final"), COMBINATIONS)
def test_every_combination_takes_an_optimizer_step(first: str, core: str, final: str) -> None:
    """All 8 x 8 x 8 = 512 (the families found in conf/first) under autosome processing (about 6 min on 1 core)."""
    optimizer_step(first, core, final, "autosome")


@pytest.mark.parametrize(("first", "core", "final"), SAMPLE)
def test_sampled_combinations_take_an_optimizer_step(first: str, core: str, final: str) -> None:
    optimizer_step(first, core, final, "autosome")


@pytest.mark.parametrize("processing", PROCESSINGS)
@pytest.mark.parametrize(("first", "core", "final"), SAMPLE[:6])
def test_sampled_combinations_take_a_step_with_every_processing(first, core, final, processing) -> None:
    optimizer_step(first, core, final, processing)


@pytest.mark.parametrize("team", TEAMS)
@pytest.mark.parametrize("processing", PROCESSINGS)
def test_each_family_follows_every_processing(team: str, processing: str) -> None:
    module = build_module(combo_cfg(team, team, team, processing)).eval()
    with torch.no_grad():
        assert module(random_batch(module)["x"]).shape == (3, 1)


@pytest.mark.parametrize(
    ("experiment", "params"),
    [
        ("dream_cnn", 1_933_970),
        ("dream_rnn", 4_130_578),
        ("dream_attn", 4_539_410),
        ("autosome", 1_725_122),
        ("bhi", 6_875_137),
        ("resnet", 12_209_857),
        ("camformers", 16_611_073),
        ("nad", 14_307_916),  # the team's 14,176,716 + the learned 5-mer embedding (131,200) that GloVe kept frozen
        ("sysu", 10_051_073),
        ("metformin", 565_377),  # trainable; Keras' 565,633 adds BatchNorm's moving statistics
    ],
)
def test_presets_report_published_parameter_counts(experiment: str, params: int) -> None:
    module = build_module(compose_cfg([f"experiment={experiment}", "logger=none"]))
    assert count_params(module) == params
    assert module.describe().splitlines()[-1] == f"params: {params}"  # what dry_run=true prints


def test_dream_attn_runs_four_heads_as_published() -> None:
    module = build_module(compose_cfg(["experiment=dream_attn", "logger=none"]))
    assert module.net.report[1].in_shape == (256, 150)
    assert {m.n_heads for m in module.net.core.modules() if hasattr(m, "n_heads")} == {4}
    assert module.hparams.recipe["lr"] == 0.001
    core = module.net.core  # the organisers' published core, not the team's original
    assert core.init == "pytorch" and all(layer.published_residual for layer in core.layers)
    original = build_module(compose_cfg(["experiment=unlockdna", "logger=none"])).net.core
    assert original.init == "keras" and not any(layer.published_residual for layer in original.layers)


def test_unlockdna_original_preset_count() -> None:
    module = build_module(compose_cfg(["experiment=unlockdna", "logger=none"]))
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == 47_425_543
    assert module.processing.mask_ratio == 0.05  # the team's masked-nucleotide auxiliary task is on


def test_presets_leave_the_data_set_open(dream_sample: Path) -> None:
    cfg = compose_cfg(["experiment=dream_rnn", "data=dream", f"data.path={dream_sample}", "logger=none"])
    assert cfg.data.name == "dream" and cfg.first.name == "bhi" and cfg.core.name == "bhi"
    assert cfg.final.name == "autosome" and cfg.processing.name == "autosome" and cfg.recipe.name == "autosome"


def test_design_card_example_composes() -> None:
    module = build_module(compose_cfg(["first=autosome", "core=bhi", "final=resnet", "logger=none"]))
    assert [r.name for r in module.net.report] == ["autosome", "bhi", "resnet"]


def _lrs(recipe: str, total: int, steps: list[int]) -> list[float]:
    cfg = compose_cfg([f"recipe={recipe}", "logger=none"])
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = instantiate(cfg.recipe.optimizer)(params, lr=cfg.recipe.lr)
    sched = instantiate(cfg.recipe.scheduler)(opt, total_steps=total, lr=cfg.recipe.lr)
    seen = {}
    for step in range(max(steps) + 1):
        seen[step] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return [seen[s] for s in steps]


def test_autosome_one_cycle_matches_closed_form() -> None:
    total, peak = 1000, 0.005
    start = peak / 25
    end = start / 1e4
    warm = 0.3 * total - 1  # torch's One-Cycle reaches the peak at step pct_start * total - 1

    def expected(t: int) -> float:
        if t <= warm:
            return start + (peak - start) * (1 - math.cos(math.pi * t / warm)) / 2
        frac = (t - warm) / (total - 1 - warm)
        return end + (peak - end) * (1 + math.cos(math.pi * frac)) / 2

    steps = [0, 100, 299, 600, total - 1]
    for got, t in zip(_lrs("autosome", total, steps), steps):
        assert got == pytest.approx(expected(t), rel=1e-6)


@pytest.mark.parametrize("recipe", ["camformers", "sysu"])
def test_plateau_recipes_step_on_the_validation_metric(recipe: str, tmp_path: Path) -> None:
    """ReduceLROnPlateau (Camformers: val/loss, min; SYSU: val/pearson, max) runs per epoch inside Lightning."""
    from src.train_task import train

    cfg = compose_cfg(
        [*FAST, f"recipe={recipe}", "recipe.epochs=2", "recipe.scheduler.patience=0", "recipe.scheduler.factor=0.5"]
        + SHRINK["first", "autosome"]
        + SHRINK["core", "autosome"],
        run_dir=tmp_path,
    )
    summary = train(cfg)
    assert summary["epochs"] == 2 and math.isfinite(summary["metrics"]["val/loss"])


def test_deep_supervision_adds_the_level_losses() -> None:
    torch.manual_seed(0)
    overrides = ["final.block.deep_supervision=false"]
    plain = build_module(combo_cfg("resnet", "nad", "nad", "autosome", overrides))
    deep = build_module(combo_cfg("resnet", "nad", "nad", "autosome"))
    deep.load_state_dict(plain.state_dict())
    batch = random_batch(plain)
    losses = []
    for module in (plain, deep):
        module.train()
        torch.manual_seed(1)  # the same label noise in both
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            losses.append(module.training_step(batch, 0))
    _, aux = deep.net(batch["x"], batch)
    assert set(aux) == {"final/deep"}
    assert losses[1] > losses[0]
