"""TAPGPTClassifier on a tiny random Llama (SmolLM2's tokenizer): sklearn contract, label-token probabilities
against a naive forward pass, LoRA that touches only the adapter, save/load, bit-identical resume, errors."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from tenfold.common.errors import UserError
from tenfold.tabular import TAPGPTClassifier, rank_features, split_pool


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 40
    y = (np.arange(n) % 3 == 0).astype(int)
    X = pd.DataFrame({"tau": rng.normal(size=n) + 2 * y, "age": rng.integers(60, 90, n).astype(float),
                      "noise": rng.normal(size=n), "apoe": rng.choice(["E3E3", "E3E4"], n)})
    X.loc[3, "age"] = np.nan
    return X, np.where(y == 1, "Impaired", "Control")


def _clf(**kw):
    base = dict(model="tiny-debug", k=2, n_features=3, label_name="dx", pool_size=0.25, random_state=0,
                lora_r=2, batch_size=2)
    return TAPGPTClassifier(**{**base, **kw})


def test_clone_round_trip_and_params():
    clf = _clf(lora_steps=3, prompt_style="text")
    c = clone(clf)
    assert c.get_params() == clf.get_params() and c is not clf
    assert not hasattr(c, "features_")


def test_fit_selects_features_and_pool(data):
    X, y = data
    clf = _clf().fit(X, y)
    assert list(clf.classes_) == ["Control", "Impaired"]
    assert clf.features_[0] == "tau" and len(clf.features_) == 3
    assert len(clf.pool_index_) == 10 and not set(clf.pool_index_) & set(clf.tune_index_)
    rest, pool = split_pool((y == "Impaired").astype(int), 0.25, 0)
    assert np.array_equal(pool, clf.pool_index_)
    prompts = clf.prompts(X.iloc[:2])
    assert all(p.endswith("### Response: ") and " X\n" in p for p in prompts)
    assert clf.prompts(X.iloc[:2]) == prompts          # deterministic


def test_rank_features_matches_naive_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(60, 5)) * [1, 3, 0.5, 2, 1], columns=list("abcde"))
    y = (X["b"] + 0.5 * X["d"] + 0.3 * rng.normal(size=60) > 0).astype(int)
    coef = LogisticRegression(solver="liblinear", max_iter=5000).fit(StandardScaler().fit_transform(X), y).coef_[0]
    assert rank_features(X, y.to_numpy()) == list(X.columns[np.argsort(-np.abs(coef), kind="stable")])


def test_predict_proba_is_softmax_of_label_token_logits(data):
    X, y = data
    clf = _clf().fit(X, y)
    proba = clf.predict_proba(X.iloc[:4])
    tok, model = clf.tokenizer_, clf.model_
    ids0, ids1 = tok.encode("0", add_special_tokens=False), tok.encode("1", add_special_tokens=False)
    for i, prompt in enumerate(clf.prompts(X.iloc[:4])):   # naive: full logits, chat template by hand
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            z = model(input_ids=ids).logits[0, -1].double()
        ref = torch.softmax(torch.stack([z[ids0[0]], z[ids1[0]]]), 0).numpy()
        np.testing.assert_allclose(proba[i], ref, rtol=1e-5, atol=1e-7)
    assert np.allclose(proba.sum(1), 1)
    assert list(clf.predict(X.iloc[:4])) == list(clf.classes_[proba.argmax(1)])
    det = clf.predict_details(X.iloc[:4])
    assert np.allclose(det["proba"], proba) and ((det["label_mass"] > 0) & (det["label_mass"] <= 1)).all()
    assert 0.0 <= clf.score(X.iloc[:4], y[:4]) <= 1.0


def _naive_logits(clf, X):
    """Next-token logits of each whole prompt, one uncached forward pass per query (the reference path)."""
    out = []
    for prefix, _, rows in clf._plan(X):
        for i, q, _ in rows:
            with torch.no_grad():
                out.append((i, clf.model_(input_ids=torch.tensor([prefix + q])).logits[0, -1].double()))
    return torch.stack([z for _, z in sorted(out, key=lambda t: t[0])])


@pytest.mark.parametrize("shot_sets,batch,lora", [(None, 16, 0), (2, 3, 0), (1, 16, 2), (3, 2, 2)])
def test_cached_batched_logits_equal_uncached_prompts(data, shot_sets, batch, lora):
    X, y = data
    clf = _clf(shot_sets=shot_sets, predict_batch_size=batch, lora_steps=lora, learning_rate=5e-2).fit(X, y)
    z, mass, ok = clf._label_logits(X.iloc[:7])
    ref = _naive_logits(clf, X.iloc[:7])                        # (7, vocab)
    lab = clf.label_token_ids_
    np.testing.assert_allclose(z, ref[:, lab].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mass, ref.softmax(-1)[:, lab].sum(-1).numpy(), rtol=1e-5, atol=1e-7)
    assert np.array_equal(ok, np.isin(ref.argmax(-1).numpy(), lab))
    full = clf._forward_group(*(lambda g: (g[0], [q for _, q, _ in g[2]]))(clf._plan(X.iloc[:7])[0]))
    assert full.shape == (len(clf._plan(X.iloc[:7])[0][2]), clf.model_.config.vocab_size)


def test_token_parts_spell_the_templated_prompt(data):
    X, y = data
    clf = _clf(shot_sets=2).fit(X, y)
    tok = clf.tokenizer_
    groups = clf._plan(X.iloc[:5])
    assert len(groups) == 2 and sorted(i for g in groups for i, _, _ in g[2]) == list(range(5))
    for prefix_ids, prefix, rows in groups:
        for i, q, suffix in rows:
            text = tok.apply_chat_template([{"role": "user", "content": prefix + suffix}], add_generation_prompt=True,
                                           tokenize=False)
            assert tok.decode(prefix_ids + q) == text
            assert clf.prompts(X.iloc[:5])[i] == prefix + suffix


@pytest.mark.parametrize("tune_batch", [1, 3, 8])
def test_shared_prefix_gradient_equals_separate_prompts(data, tune_batch):
    X, y = data
    clf = _clf(shot_sets=1, lora_steps=1, lora_dropout=0.0, learning_rate=5e-2, tune_batch_size=tune_batch).fit(X, y)
    prefix, _, rows = clf._plan(X.iloc[:4])[0]
    target = torch.tensor(clf.label_token_ids_)[torch.tensor([0, 1, 1, 0])]
    params = [p for p in clf.model_.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    got = clf._backward_group(prefix, [q for _, q, _ in rows], target, 0.25)      # cached, chunked
    g_cached = [p.grad.clone() for p in params]
    z = clf._forward_group(prefix, [q for _, q, _ in rows])
    g_batched = torch.autograd.grad(0.25 * torch.nn.functional.cross_entropy(z, target, reduction="sum"), params)
    loss = 0.25 * sum(torch.nn.functional.cross_entropy(clf.model_(input_ids=torch.tensor([prefix + q])).logits[0, -1:],
                                                        target[j:j + 1]) for j, (_, q, _) in enumerate(rows))
    g_naive = torch.autograd.grad(loss, params)
    assert got == pytest.approx(float(loss.detach()), rel=1e-5)
    for a, b, c in zip(g_cached, g_naive, g_batched):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(c, b, rtol=1e-4, atol=1e-6)
    assert any(float(a.abs().max()) > 0 for a in g_cached)


def test_lora_tunes_only_the_adapter_and_lowers_loss(data):
    X, y = data
    before = _clf().fit(X, y)
    base = {n: p.detach().clone() for n, p in before.model_.named_parameters()}
    clf = _clf(lora_steps=6, learning_rate=5e-2, lora_dropout=0.0).fit(X, y)
    assert len(clf.lora_losses_) == 6
    assert np.mean(clf.lora_losses_[-2:]) < np.mean(clf.lora_losses_[:2])
    for name, p in clf.model_.named_parameters():
        if "lora_" in name:
            continue
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(p, base[key]), name                  # the backbone is frozen
    assert not np.allclose(clf.predict_proba(X.iloc[:3]), before.predict_proba(X.iloc[:3]))


def test_save_load_round_trip(data, tmp_path):
    X, y = data
    clf = _clf(lora_steps=2, learning_rate=1e-2).fit(X, y)
    clf.save(tmp_path / "m")
    back = TAPGPTClassifier.load(tmp_path / "m")
    assert back.get_params() == clf.get_params() and back.features_ == clf.features_
    np.testing.assert_array_equal(back.predict_proba(X.iloc[:3]), clf.predict_proba(X.iloc[:3]))


def test_lora_resume_is_bit_identical(data, tmp_path):
    X, y = data
    full = _clf(lora_steps=4, learning_rate=1e-2).fit(X, y, checkpoint_dir=tmp_path / "a", checkpoint_every=2)

    def stop(step, loss):
        if step == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):   # interrupted after step 3; the last checkpoint is step 2
        _clf(lora_steps=4, learning_rate=1e-2).fit(X, y, checkpoint_dir=tmp_path / "b", checkpoint_every=2,
                                                   callback=stop)
    torch.manual_seed(123)                    # dropout RNG comes back from the checkpoint, not from here
    resumed = _clf(lora_steps=4, learning_rate=1e-2).fit(X, y, checkpoint_dir=tmp_path / "b", checkpoint_every=2)
    assert resumed.lora_losses_ == full.lora_losses_
    for (n, p), (_, q) in zip(full.model_.named_parameters(), resumed.model_.named_parameters()):
        assert torch.equal(p, q), n
    with pytest.raises(UserError, match="other parameters"):
        _clf(lora_steps=4, learning_rate=2e-2).fit(X, y, checkpoint_dir=tmp_path / "b")


def test_generate_reports_unparsable(data):
    X, y = data
    out = _clf().fit(X, y).generate(X.iloc[:2], reasoning=True, max_new_tokens=3)
    assert len(out) == 2
    for o in out:   # a random model rarely answers: unparsable outputs stay None, never a class
        assert set(o) == {"text", "label", "parsed"} and o["parsed"] == (o["label"] is not None)


def test_missing_values_stay_nan_in_prompts(data):
    X, y = data
    clf = _clf(n_features=None).fit(X, y)
    Xq = X.iloc[[3]]
    assert "NaN" in clf.prompts(Xq)[0]


@pytest.mark.parametrize("kw,fit_X,fit_y,match", [
    ({}, "array", None, "Invalid X: expected a pandas DataFrame"),
    ({}, None, "three", "supports exactly 2 classes"),
    ({"k": 20}, None, None, "Invalid k"),
    ({"n_features": 9}, None, None, "Invalid n_features"),
    ({"prompt_style": "html"}, None, None, "Invalid prompt_style"),
    ({"model": "gpt-5"}, None, None, "Invalid model"),
    ({"pool_size": 1.5}, None, None, "Invalid pool_size"),
    ({"label_name": "tau"}, None, None, "Invalid label_name"),
    ({"lora_dropout": 1.0}, None, None, "Invalid lora_dropout"),
    ({"k": -1}, None, None, "Invalid k"),
    ({"max_length": 64}, None, None, "max_length"),
    ({"quantization": "4bit"}, None, None, "needs a CUDA GPU"),
    ({"quantization": "8bit"}, None, None, "Invalid quantization"),
    ({"shot_sets": 0}, None, None, "Invalid shot_sets"),
    ({"predict_batch_size": 0}, None, None, "Invalid predict_batch_size"),
    ({"tune_batch_size": 0}, None, None, "Invalid tune_batch_size"),
])
def test_errors(data, kw, fit_X, fit_y, match):
    X, y = data
    if fit_X == "array":
        X = X.to_numpy()
    if fit_y == "three":
        y = np.arange(len(y)) % 3
    clf = _clf(**kw)
    with pytest.raises(UserError, match=match):
        clf.fit(X, y)
        clf.predict_proba(data[0].iloc[:1])


def test_predict_errors(data):
    X, y = data
    clf = _clf().fit(X, y)
    with pytest.raises(UserError, match="missing selected feature"):
        clf.predict_proba(X.drop(columns=[clf.features_[0]]))
    with pytest.raises(UserError, match="Invalid path"):
        TAPGPTClassifier.load("/nonexistent/tapgpt")
