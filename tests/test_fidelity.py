"""Fidelity without labels, and the held-out texts it is measured on."""

from __future__ import annotations

import pytest
import torch

from peftport.probing.texts import held_out_texts
from peftport.transfers.fidelity import fidelity_figure, hidden_fidelity, logit_fidelity


def _write(path, texts):
    path.write_text("\n".join(texts) + "\n")
    return path


def test_held_out_texts_follow_the_trained_ones_and_leave_them_as_they_are(tmp_path):
    texts = [f"text number {i}" for i in range(1500)]
    source = _write(tmp_path / "texts.txt", texts[:1000] + ["text number 3"] + texts[1000:])  # a repeat
    trained, held = held_out_texts(source, texts[:1000])
    assert trained == texts[:1000] and len(held) == 200 and held == texts[1000:1200]
    more, held_more = held_out_texts(_write(tmp_path / "more.txt", [f"t {i}" for i in range(9000)]),
                                     [f"t {i}" for i in range(3000)])  # fmt: skip
    assert len(more) == 3000 and len(held_more) == 300  # 10%, when that is more than 200


def test_a_short_source_gives_up_the_tail_of_its_trained_texts(tmp_path):
    texts = [f"short {i}" for i in range(120)]
    trained, held = held_out_texts(_write(tmp_path / "short.txt", texts), texts)
    assert len(held) == 24 and trained == texts[:96] and not set(trained) & set(held)
    repeated = texts[:60] + texts[:60]
    kept, held = held_out_texts(_write(tmp_path / "twice.txt", repeated), repeated)
    assert held == [] or not set(kept) & set(held), "a held-out text is never a trained one"


def test_logit_fidelity_counts_agreement_and_kl():
    teacher = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [3.0, 0.0, 0.0]])
    student = teacher.clone()
    student[3] = torch.tensor([0.0, 3.0, 0.0])
    measured = logit_fidelity(teacher, student)
    assert measured["agreement"] == pytest.approx(0.75) and measured["kl"] > 0
    assert measured["balanced_agreement"] == pytest.approx((0.5 + 1 + 1) / 3)  # label 0: one of two agree
    assert logit_fidelity(teacher, teacher)["kl"] == pytest.approx(0.0, abs=1e-7)
    regression = logit_fidelity(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[2.0], [4.0], [6.5]]))
    assert set(regression) == {"correlation"} and regression["correlation"] > 0.99
    assert fidelity_figure(regression) == ("correlation", regression["correlation"])


def test_hidden_fidelity_is_an_r2_against_the_mapped_teacher():
    target = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    assert hidden_fidelity(target, target)["r2"] == pytest.approx(1.0)
    assert hidden_fidelity(target, target.mean(0).expand_as(target))["r2"] == pytest.approx(0.0, abs=1e-9)
    noisy = hidden_fidelity(target, target + 0.5 * torch.randn(50, 8, generator=torch.Generator().manual_seed(1)))
    assert 0.5 < noisy["r2"] < 1 and noisy["relative_mse"] > 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from module_factory import make_peft_lora
    from tiny_models import save_tiny_model
    from tiny_tokenizers import probe_sentences, save_wordpiece

    root = tmp_path_factory.mktemp("fidelity")
    teacher = save_wordpiece(save_tiny_model("bert", 2, root / "teacher", hidden=32, vocab_size=200))
    student = save_wordpiece(save_tiny_model("bert", 2, root / "student", hidden=32, vocab_size=200, seed=1))
    module = make_peft_lora(teacher, "bert", root / "lora", slots=["attn_q"])
    probe = _write(root / "probe.txt", probe_sentences(80, seed=2))
    return str(teacher), str(student), module, probe


def test_the_teachers_outputs_are_cached_once_and_reused_exactly(tiny, tmp_path, monkeypatch):
    import peftport
    from peftport.transfers import teacher_outputs

    teacher, student, module, probe = tiny
    computed, real = [], teacher_outputs.compute_outputs
    monkeypatch.setattr(teacher_outputs, "compute_outputs", lambda *a, **k: computed.append(1) or real(*a, **k))
    options = {"probe_data": str(probe), "head": True, "recover_steps": 3, "teacher_cache": str(tmp_path / "cache")}
    first = peftport.transfer(module, teacher, student, **options).provenance["recovery"]
    assert len(computed) == 2  # the recovery texts and the held-out texts
    again = peftport.transfer(module, teacher, student, **options).provenance["recovery"]
    assert len(computed) == 2 and len(list((tmp_path / "cache").iterdir())) == 2
    assert (again["first_loss"], again["last_loss"]) == (first["first_loss"], first["last_loss"])
    assert again["fidelity"] == first["fidelity"]
    shorter = peftport.transfer(module, teacher, student, **{**options, "recover_steps": 1})
    assert len(computed) == 2, "fewer steps read the first texts of the same cached list"
    assert shorter.provenance["recovery"]["first_loss"] == first["first_loss"]


def test_a_linear_recovery_schedule_is_an_option_everywhere():
    from peftport.errors import PeftportError
    from peftport.experiments.config import TransferConfig
    from peftport.transfers.options import transfer_options
    from peftport.transfers.recovery import RecoveryOptions

    with pytest.raises(PeftportError, match="unknown recovery schedule 'cosine': use one of constant, linear"):
        transfer_options(recover_schedule="cosine")
    config = TransferConfig(align="projection", recover_steps=25, recover_schedule="linear")
    assert config.label == "skip+proj+rec25+lin" and TransferConfig(recover_steps=25).label == "skip+rec25"
    factors = [RecoveryOptions(20, schedule="linear").rate_factor(s) for s in range(20)]
    peak = factors.index(1.0)  # after the 10% warm-up: 2 of 20 steps
    assert peak == 2 and factors[:peak] == sorted(factors[:peak]) and factors[peak:] == sorted(factors[peak:])[::-1]
    assert factors[0] < 1 and factors[-1] == 0.0


def test_recovery_stops_when_held_out_fidelity_stops_rising_and_keeps_the_best(tiny):
    import peftport

    teacher, student, module, probe = tiny
    options = {"probe_data": str(probe), "head": True, "recover_steps": 30, "recover_lr": 3.0, "recover_patience": 2}
    record = peftport.transfer(module, teacher, student, **options).provenance["recovery"]
    curve = record["fidelity_curve"]
    assert curve[0][0] == 0 and record["steps_done"] < 30, "a rate of 3 ruins the student: it stops early"
    assert record["best_fidelity"] == max(score for _, score in curve)
    kept = record["fidelity"]["recovered"]["balanced_agreement"]
    assert kept == pytest.approx(record["best_fidelity"], abs=1e-6), "it ends on the best check's module"


def test_recovery_under_bf16_autocast_is_an_option_everywhere(tiny, monkeypatch):
    import peftport
    import peftport.transfers.recovery as recovery
    from peftport.errors import PeftportError
    from peftport.experiments.config import TransferConfig
    from peftport.transfers.options import transfer_options
    from peftport.transfers.recovery_options import uses_bf16

    with pytest.raises(PeftportError, match="unknown recovery precision 'fp8'"):
        transfer_options(recover_precision="fp8")
    assert TransferConfig(recover_steps=25, recover_precision="bf16").label == "skip+rec25+bf16"
    assert uses_bf16("bf16", torch.device("cpu")) and not uses_bf16("fp32", torch.device("cpu"))
    seen = []
    real = recovery.forward
    monkeypatch.setattr(
        recovery, "forward", lambda model, enc: seen.append(torch.is_autocast_enabled("cpu")) or real(model, enc)
    )
    teacher, student, module, probe = tiny
    options = {"probe_data": str(probe), "head": True, "recover_steps": 3}
    plain = peftport.transfer(module, teacher, student, **options).provenance["recovery"]
    assert seen == [False] * 3 and "precision" not in plain
    seen.clear()
    bf16 = peftport.transfer(module, teacher, student, **options, recover_precision="bf16").provenance["recovery"]
    assert seen == [True] * 3 and bf16["precision"] == "bf16"
    assert bf16["first_loss"] == pytest.approx(plain["first_loss"], rel=0.1)  # the same loss, in lower precision


def test_a_killed_recovery_resumes_from_its_last_save_and_ends_as_an_unbroken_run(tiny, tmp_path, monkeypatch):
    import peftport
    import peftport.transfers.recovery as recovery

    teacher, student, module, probe = tiny
    options = {"probe_data": str(probe), "head": True, "recover_steps": 10, "recover_lr": 0.05}
    unbroken = peftport.transfer(module, teacher, student, **options, teacher_cache=str(tmp_path / "a"))
    real, calls = recovery._loss, []

    def killed_at_step_7(*args):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt("killed")
        return real(*args)

    monkeypatch.setattr(recovery, "_loss", killed_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        peftport.transfer(module, teacher, student, **options, teacher_cache=str(tmp_path / "b"))
    saves = list((tmp_path / "b" / "recovery-checkpoints").glob("*.pt"))
    assert len(saves) == 1, "the save of the killed run is kept"
    monkeypatch.setattr(recovery, "_loss", real)
    resumed = peftport.transfer(module, teacher, student, **options, teacher_cache=str(tmp_path / "b"))
    record, expected = resumed.provenance["recovery"], unbroken.provenance["recovery"]
    assert record["resumed_at"] == 6 and "resumed_at" not in expected
    assert record["last_loss"] == pytest.approx(expected["last_loss"], rel=1e-5)
    assert record["fidelity"]["recovered"] == pytest.approx(expected["fidelity"]["recovered"], rel=1e-5)
    for layer in unbroken.layers:
        for slot, roles in unbroken.layers[layer].items():
            for role, tensor in roles.items():
                assert torch.allclose(resumed.layers[layer][slot][role], tensor, atol=1e-6)
    assert not (tmp_path / "b" / "recovery-checkpoints").exists(), "a finished run leaves no save"


def test_the_fresh_control_distils_a_default_initialised_module_and_a_random_head(tiny, cli, tmp_path):
    import json

    import peftport
    from peftport.errors import PeftportError
    from peftport.experiments.config import TransferConfig

    teacher, student, module, probe = tiny
    options = {"probe_data": str(probe), "head": True, "recover_steps": 4, "recover_lr": 0.05}
    moved = peftport.transfer(module, teacher, student, **options)
    fresh = peftport.transfer(module, teacher, student, **options, start="fresh")
    assert fresh.provenance["start"] == "fresh" and "start" not in moved.provenance
    before = fresh.provenance["recovery"]["fidelity"]["transferred"]
    assert before != moved.provenance["recovery"]["fidelity"]["transferred"], "it starts from another module"
    lora_b = fresh.layers[0]["attn_q"]["lora_B"]
    assert lora_b.abs().max() > 0, "a LoRA B that starts at zero (peft's init) is trained by the distillation"
    with pytest.raises(PeftportError, match="--start fresh distils a fresh module"):
        peftport.transfer(module, teacher, student, probe_data=str(probe), start="fresh", recover_steps=2)
    out = tmp_path / "fresh"
    result = cli("transfer", "--teacher", teacher, "--student", student, "--module", module, "--out", out,
                 "--probe-data", probe, "--head", "--recover-steps", "2", "--start", "fresh")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "peftport_manifest.json").read_text())["start"] == "fresh"
    assert TransferConfig(start="fresh", recover_steps=25, head="teacher").label == "fresh+head+rec25"
    with pytest.raises(ValueError, match="start: fresh distils"):
        TransferConfig(start="fresh", recover_steps=25)


def test_a_grid_runs_the_fresh_control_beside_the_label_free_transfer(grid):
    from grid_setup import NER, TRAINING, pair_of, write_experiment
    from peftport.experiments import runner
    from peftport.experiments.config import load_config
    from peftport.experiments.store import read_index

    root, models = grid
    rows = [{"layer_map": "skip", "head": "teacher", "recover_steps": 3},
            {"layer_map": "skip", "head": "teacher", "recover_steps": 3, "start": "fresh"}]  # fmt: skip
    fields = {"pairs": pair_of(models), "tasks": [NER], "transfers": rows, "training": TRAINING}
    out = root / "fresh-out"
    runner.run_experiment(load_config(write_experiment(root, "fresh", **fields)), out)
    moved = {r["transfer"]: r for r in read_index(out) if r["kind"] == "transferred"}
    assert set(moved) == {"skip+head+rec3", "fresh+head+rec3"}
    assert moved["fresh+head+rec3"]["id"] != moved["skip+head+rec3"]["id"]
    fresh, label_free = moved["fresh+head+rec3"]["recovery"], moved["skip+head+rec3"]["recovery"]
    assert fresh["fidelity"]["transferred"] != label_free["fidelity"]["transferred"]
