"""interpret.py / variant_effect.py: scores on the read for every processing family, ISM and variant effects
against predictions computed by hand, evaluate's paired subsets through the same function, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from src.checkpoint import load_module
from src.errors import ConfigError, DataError
from src.evaluation.dream_suite import SEQUENCE_FILE, SUBSET_FILES
from src.evaluation.evaluate_model import evaluate_module
from src.inference import predict_sequences
from src.interpret.attribution import METHODS, attribute
from src.interpret.motifs import marginalize_motif, resolve_motif
from src.interpret.read_model import ReadModel, prepare_reads
from src.interpret.variants import variant_effects
from src.interpret_task import interpret, variant_effect
from src.train_task import build_module
from tests.helpers import ROOT, SHRINK, TINY_AUTOSOME, compose_cfg, train_tiny

GRADIENTS = {"saliency", "integrated_gradients", "deep_lift_shap"}
# the known-truth model: the default blocks, shrunk, on 3,000 synthetic reads for 3 epochs (282 steps of 64)
TRUTH_RUN = [
    *TINY_AUTOSOME,
    "data.source.n=3000",
    "recipe.epochs=3",
    "recipe.steps_per_epoch=null",
    "recipe.batch_size=64",
]
# family -> (blocks, processing overrides, read lengths, methods refused for this tiny model)
FAMILIES = {
    "autosome": ("autosome", ["processing.seq_len=40"], (50, 45), {"deep_lift_shap"}),  # soft-bin softmax
    "bhi": ("bhi", ["processing.seq_len=40"], (40, 34), {"deep_lift_shap"}),  # LSTM core
    "unlockdna": ("unlockdna", [], (60, 55), {"deep_lift_shap"}),  # functional nonlinearities
    "nad": ("nad", [], (99, 90), GRADIENTS),  # 5-mer ids: no gradient
    "sysu": ("sysu", ["processing.seq_len=160", "processing.flank=20"], (60, 55), GRADIENTS),  # 3-mer tokens
    "metformin": ("metformin", ["processing.seq_len=100"], (60, 55), {"deep_lift_shap"}),  # GRUs
    "mpra": ("camformers", ["processing.seq_len=60", "+processing.reverse_marker=_R"], (60, 60), set()),
}


def random_reads(lengths: tuple[int, ...], seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join("ACGT"[i] for i in rng.integers(0, 4, n)) for n in lengths]


def family_module(family: str):
    team, extra, _, _ = FAMILIES[family]
    overrides = [f"first={team}", f"core={team}", f"final={team}", f"processing={family}", "logger=none"]
    overrides += SHRINK["first", team] + SHRINK["core", team] + SHRINK["final", team] + extra
    torch.manual_seed(0)
    return build_module(compose_cfg(overrides)).eval()


def mutate(seq: str, pos: int, base: str) -> str:
    return seq[:pos] + base + seq[pos + 1 :]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_method_scores_the_read_of_each_processing_family(family: str) -> None:
    module = family_module(family)
    reads = random_reads(FAMILIES[family][2], seed=len(family))
    ids = ["a", "b_R"]  # the second read is reverse-oriented for mpra (a flag from its id)
    prepared = prepare_reads(module, reads, ids=ids)
    model = ReadModel(module, prepared.layouts)
    # the wrapper predicts what predict.py predicts (one processing, run inside the forward)
    expected = predict_sequences(module, reads, ids=ids, device="cpu", progress=False)
    with torch.no_grad():
        np.testing.assert_allclose(model(prepared.onehot, prepared.layout).numpy(), expected, atol=1e-5, rtol=1e-5)
    width = max(len(r) for r in reads)
    refused = set()
    for method in METHODS:
        try:
            scores = attribute(model, prepared, method, batch_size=256, ig_steps=4, n_shuffles=3)
        except ConfigError as err:
            assert str(err).startswith(f"method={method}: ") and "use method=ism" in str(err)
            refused.add(method)
            continue
        for view in (scores.hypothetical, scores.observed):
            assert view.shape == (2, 4, width) and np.isfinite(view).all()
            assert not view[~np.broadcast_to(prepared.seen[:, None, :], view.shape)].any()  # unseen: zero
        assert np.abs(scores.observed).sum() > 0
        np.testing.assert_allclose(scores.predictions, expected, atol=1e-5, rtol=1e-5)
    assert refused == FAMILIES[family][3]
    # ISM of a base is predict(mutant) - predict(read), computed by hand through predict_sequences
    ism = attribute(model, prepared, "ism", batch_size=256)
    seen = np.flatnonzero(prepared.seen[0])
    picks = [(int(seen[0]), "A"), (int(seen[len(seen) // 2]), "G"), (int(seen[-1]), "T")]
    mutants = [mutate(reads[0], pos, base) for pos, base in picks]
    by_hand = predict_sequences(module, mutants, ids=ids[:1] * 3, device="cpu", progress=False)[:, 0] - expected[0, 0]
    got = [ism.hypothetical[0, "ACGT".index(base), pos] for pos, base in picks]
    np.testing.assert_allclose(got, by_hand, atol=2e-5, rtol=1e-4)


def test_an_snv_effect_is_the_ism_score_of_that_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variant effects predict through the read wrapper, the path of ISM: one copy of the processing."""
    module = family_module("bhi")  # LSTM core, both strands averaged
    read = random_reads((40,), seed=11)[0]
    prepared = prepare_reads(module, [read])
    ism = attribute(ReadModel(module, prepared.layouts), prepared, "ism", batch_size=256)
    seen = np.flatnonzero(prepared.seen[0])
    picks = [(int(p), "ACGT"[("ACGT".index(read[p]) + 1) % 4]) for p in seen[[0, len(seen) // 2, -1]]]
    calls = []
    forward = ReadModel.forward
    monkeypatch.setattr(ReadModel, "forward", lambda self, *args: calls.append(len(args[0])) or forward(self, *args))
    effects = variant_effects(module, [read] * 3, [mutate(read, pos, base) for pos, base in picks])
    assert sum(calls) == 4  # the read and its 3 mutants, each predicted once through the wrapper
    expected = [ism.hypothetical[0, "ACGT".index(base), pos] for pos, base in picks]
    np.testing.assert_allclose(effects[:, 0], expected, atol=1e-5, rtol=1e-5)


def test_padded_and_cropped_positions_score_zero() -> None:
    module = family_module("autosome")  # drops the 17-nt adapter, pads with plasmid
    reads = random_reads((50, 45))
    prepared = prepare_reads(module, reads)
    scores = attribute(ReadModel(module, prepared.layouts), prepared, "saliency")
    assert prepared.seen[0].tolist() == [False] * 17 + [True] * 33
    assert prepared.seen[1].tolist() == [False] * 17 + [True] * 28 + [False] * 5
    assert not scores.hypothetical[:, :, :17].any() and not scores.hypothetical[1, :, 45:].any()
    assert np.abs(scores.hypothetical[:, :, 17:45]).min(axis=1).max() > 0


def test_rc_average_is_an_option_of_the_read_model() -> None:
    module = family_module("bhi")
    reads = random_reads((40, 40))
    prepared = prepare_reads(module, reads)
    got = {}
    for rc in (False, True):
        model = ReadModel(module, prepared.layouts, rc_average=rc)
        with torch.no_grad():
            got[rc] = model(prepared.onehot, prepared.layout).numpy()
        np.testing.assert_allclose(got[rc], predict_sequences(module, reads, rc_average=rc, progress=False), atol=1e-5)
        scores = attribute(model, prepared, "saliency")
        got[rc, "scores"] = scores.hypothetical
    assert not np.allclose(got[False], got[True]) and not np.allclose(got[False, "scores"], got[True, "scores"])


def test_motif_names_and_iupac() -> None:
    assert (
        resolve_motif("TATA") == "TATAAA" and resolve_motif("reb1") == "TTACCCG" and resolve_motif("E-box") == "CACGTG"
    )
    assert resolve_motif("tgaSTca") == "TGASTCA"
    with pytest.raises(ConfigError, match="motif: 'Gcn4x'"):
        resolve_motif("Gcn4x")


# ----------------------------------------------------------------------------- trained model: CLI, variant effects


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("interpret") / "run", TINY_AUTOSOME)


def cfg(**values):
    return OmegaConf.create({"device": "cpu", "progress": False, **values})


def test_interpret_writes_scores_table_and_logos(ckpt: Path, tmp_path: Path) -> None:
    reads = random_reads((110, 104, 110), seed=3)
    (tmp_path / "reads.fa").write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(reads)))
    out = tmp_path / "out"
    interpret(cfg(ckpt_path=str(ckpt), input=str(tmp_path / "reads.fa"), output=str(out), method="ism", n_logos=2))
    saved = np.load(out / "scores.npz")
    assert saved["observed"].shape == saved["hypothetical"].shape == (3, 4, 110)
    assert saved["sequences"].tolist() == reads and saved["lengths"].tolist() == [110, 104, 110]
    module = load_module(ckpt)
    np.testing.assert_allclose(saved["predictions"], predict_sequences(module, reads, progress=False), atol=1e-5)
    assert sorted(p.name for p in out.iterdir()) == ["logo_0.png", "logo_1.png", "scores.npz", "top_positions.tsv"]
    rows = (out / "top_positions.tsv").read_text().splitlines()
    assert rows[0].startswith("read\tposition\tbase\tscore") and len(rows) == 1 + 3 * 10


def test_marginalize_reports_both_strands(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "motifs"
    summary = interpret(
        cfg(ckpt_path=str(ckpt), method="marginalize", motif=["TATA", "RCGTG"], backgrounds=6,
            background_length=110, positions=[40, 60], output=str(out))
    )  # fmt: skip
    assert set(summary["effects"]) == {f"{m}|{s}|{p}" for m in ("TATA", "RCGTG") for s in "+-" for p in (40, 60)}
    table = (out / "motif_effects.tsv").read_text().splitlines()
    assert table[1].split("\t")[:5] == ["TATA", "TATAAA", "+", "40", "6"]


def write_pairs(path: Path, refs: list[str], alts: list[str], measured: np.ndarray) -> None:
    path.write_text("ref\talt\tmeasured\n" + "".join(f"{r}\t{a}\t{m}\n" for r, a, m in zip(refs, alts, measured)))


def test_variant_effects_equal_two_predictions_and_evaluate_pair_scores(ckpt: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    refs = random_reads((110,) * 6, seed=7)
    alts = [mutate(s, int(p), "ACGT"[(("ACGT".index(s[p])) + 1) % 4]) for s, p in zip(refs, rng.integers(17, 110, 6))]
    # a DREAM test folder whose SNV subset is these pairs (alt_pos, ref_pos)
    folder = tmp_path / "test"
    folder.mkdir()
    values = rng.uniform(0, 17, 12)
    (folder / SEQUENCE_FILE).write_text("".join(f"{s}\t{v:.3f}\n" for s, v in zip(refs + alts, values)))
    (folder / SUBSET_FILES["SNVs"]).write_text("alt_pos,ref_pos\n" + "".join(f"{6 + i},{i}\n" for i in range(6)))
    module = load_module(ckpt)
    scores = evaluate_module(module, folder, tmp_path / "eval", device="cpu")
    measured = np.round(values[6:], 3) - np.round(values[:6], 3)
    write_pairs(tmp_path / "pairs.tsv", refs, alts, measured)
    out = tmp_path / "effects.tsv"
    result = variant_effect(cfg(ckpt_path=str(ckpt), pairs=str(tmp_path / "pairs.tsv"), output=str(out)))
    effects = np.array([float(line.split("\t")[-1]) for line in out.read_text().splitlines()[1:]])
    by_hand = (
        predict_sequences(module, alts, progress=False)[:, 0] - predict_sequences(module, refs, progress=False)[:, 0]
    )
    np.testing.assert_allclose(effects, by_hand, atol=1e-5)
    snv = scores["subsets"]["SNVs"]
    assert result["correlations"]["pearson"] == pytest.approx(snv["r"], abs=1e-5)
    assert result["correlations"]["spearman"] == pytest.approx(snv["rho"], abs=1e-5)
    # seq/pos/alt rows give the same effects
    (tmp_path / "snv.tsv").write_text(
        "seq\tpos\talt\n"
        + "".join(
            f"{r}\t{next(i for i in range(110) if r[i] != a[i])}\t{a[next(i for i in range(110) if r[i] != a[i])]}\n"
            for r, a in zip(refs, alts)
        )  # noqa: E501
    )
    variant_effect(cfg(ckpt_path=str(ckpt), pairs=str(tmp_path / "snv.tsv"), output=str(tmp_path / "snv_out.tsv")))
    again = [float(line.split("\t")[-1]) for line in (tmp_path / "snv_out.tsv").read_text().splitlines()[1:]]
    np.testing.assert_allclose(again, effects, atol=1e-6)


def test_bad_input_is_one_line_and_writes_nothing(ckpt: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT" * 27 + "AC\n" + "ACGTXACGT" * 12 + "AC\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"bad.txt:2: letter 'X'"):
        interpret(cfg(ckpt_path=str(ckpt), input=str(bad), output=str(out)))
    with pytest.raises(ConfigError, match="motif: 'Nope'"):
        interpret(cfg(ckpt_path=str(ckpt), method="marginalize", motif="Nope", backgrounds=3, output=str(out)))
    with pytest.raises(ConfigError, match="method=deep_lift_shap: attributions miss"):
        (tmp_path / "ok.txt").write_text(random_reads((110,))[0] + "\n")
        interpret(cfg(ckpt_path=str(ckpt), input=str(tmp_path / "ok.txt"), output=str(out), method="deep_lift_shap"))
    long = tmp_path / "long.txt"
    long.write_text(random_reads((110,))[0] + "\n" + random_reads((200,))[0] + "\n")
    with pytest.raises(DataError, match=r"long.txt:2: sequence of 200 nt is 183 nt after the 17-nt adapter"):
        interpret(cfg(ckpt_path=str(ckpt), input=str(long), output=str(out)))
    with pytest.raises(ConfigError, match="orientation=both: run once"):
        interpret(cfg(ckpt_path=str(ckpt), input=str(long), output=str(out), orientation="both"))
    repeat = tmp_path / "repeat.txt"
    repeat.write_text("ACGT" * 27 + "AC\n")
    with pytest.raises(DataError, match=r"repeat.txt:1: its dinucleotide shuffles are all the same"):
        interpret(cfg(ckpt_path=str(ckpt), input=str(repeat), output=str(out), method="deep_lift_shap"))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("seq\tpos\talt\n" + "ACGT" * 27 + "AC\t110\tA\n")
    with pytest.raises(DataError, match=r"pairs.tsv:2: pos 110 is outside the 110-nt seq"):
        variant_effect(cfg(ckpt_path=str(ckpt), pairs=str(pairs), output=str(tmp_path / "e.tsv")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "long.txt", "ok.txt", "pairs.tsv", "repeat.txt"]
    # the command line: one line, exit 2
    proc = subprocess.run(
        [sys.executable, str(ROOT / "interpret.py"), f"ckpt_path={ckpt}", f"input={bad}", f"output={out}"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: ") and not out.exists()


# ----------------------------------------------------------------------------- known truth


def planted_read(rng: np.random.Generator, sites: dict[str, int]) -> str:
    """A 110-nt DREAM-like read (adapters from the generator) with motif-free random region and ``sites``."""
    from src.datamodules.plasmid import LEFT_ADAPTER, RIGHT_ADAPTER
    from src.datamodules.synthetic import BASE_PROBS, MOTIFS

    while True:
        body = "".join("ACGT"[i] for i in rng.choice(4, size=80, p=BASE_PROBS))
        if not any(seq in body for seq, _, _ in MOTIFS.values()):
            break
    for motif, start in sites.items():
        body = body[:start] + motif + body[start + len(motif) :]
    return LEFT_ADAPTER + body + RIGHT_ADAPTER


@pytest.mark.slow
def test_a_model_trained_on_the_synthetic_generator_recovers_its_planted_motifs(tmp_path: Path) -> None:
    from src.datamodules.synthetic import MOTIFS

    ckpt = train_tiny(tmp_path / "run", TRUTH_RUN)
    module = load_module(ckpt)
    rng = np.random.default_rng(11)
    backgrounds = [planted_read(rng, {}) for _ in range(32)]
    prepared = prepare_reads(module, backgrounds)
    model = ReadModel(module, prepared.layouts)
    effect = {}
    for name, (_, truth, _) in MOTIFS.items():
        forward = marginalize_motif(model, prepared, name, [17 + 40])[0]  # centre of the random region
        effect[name] = float(forward.effects.mean())
        assert np.sign(effect[name]) == np.sign(truth), (name, effect)
    strong = [effect["Reb1"], effect["TATA box"], effect["E-box (Cbf1/Pho4)"]]
    weak = [effect["GATA"], effect["poly-T"]]
    assert min(strong) > max(weak), effect
    # ISM: the largest scores of a read carrying Reb1 and a TATA box are inside those sites
    sites = {"TTACCCG": 20, "TATAAA": 55}
    read = planted_read(rng, sites)
    prepared = prepare_reads(module, [read])
    scores = attribute(ReadModel(module, prepared.layouts), prepared, "ism")
    per_position = np.abs(scores.hypothetical[0]).sum(axis=0)
    inside = np.zeros(len(read), dtype=bool)
    for motif, start in sites.items():
        inside[17 + start : 17 + start + len(motif)] = True
    outside = per_position[~inside & prepared.seen[0]].mean()
    assert inside[per_position.argmax()] and per_position[inside].mean() > 2 * outside
    for motif, start in sites.items():  # each site stands out on its own
        assert per_position[17 + start : 17 + start + len(motif)].mean() > 1.5 * outside, motif
