"""Model registry: every model builds, runs, trains one step; options and errors behave."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from kfold import registry
from kfold.nn import models
from kfold.errors import UsageError
from kfold.nn.models import count_parameters, create_model, list_models, register_model

torch.set_num_threads(1)

ALL = list_models()


def _modules(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_registry_lists_the_report_and_modern_models():
    expected = {"lenet5", "alexnet5", "alexnet7", "ff", "ff-2x100", "ff-2x250", "ff-2x500", "resnet8",
                "resnet14", "resnet20", "resnet26", "resnet32", "resnet9", "preact_resnet18", "vgg_bn"}
    assert expected <= set(ALL)
    assert ALL == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_and_determinism(name):
    torch.manual_seed(0)
    model = create_model(name, 7)
    torch.manual_seed(0)
    again = create_model(name, 7)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    x = torch.randn(4, 1, 28, 28)
    out = model(x)
    assert out.shape == (4, 7) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters()), "a parameter is not used by forward"
    again(x)  # same training-mode batch statistics update
    model.eval(), again.eval()
    assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("name", ALL)
def test_channels_last_and_bf16_autocast(name):
    torch.manual_seed(1)
    model = create_model(name, 10).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == (4, 10)
    assert (low.float().argmax(1) == ref.argmax(1)).float().mean() >= 0.5


@pytest.mark.parametrize("name", ALL)
def test_other_channels_and_sizes(name):
    model = create_model(name, 3, in_chans=3, image_size=32)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("name", ALL)
def test_batch_norm_and_dropout_flags(name):
    with_bn = create_model(name, 10)
    without = create_model(name, 10, batch_norm=False)
    assert _modules(with_bn, nn.modules.batchnorm._BatchNorm)
    assert not _modules(without, nn.modules.batchnorm._BatchNorm)
    # without BN the convolutions get their bias back
    assert all(c.bias is not None for c in _modules(without, nn.Conv2d))
    dropped = _modules(create_model(name, 10, dropout=0.35), nn.Dropout)
    assert dropped and all(d.p == 0.35 for d in dropped)
    assert not _modules(create_model(name, 10, dropout=0.0), nn.Dropout)


@pytest.mark.parametrize("name, low, high", [
    ("lenet5", 55_000, 65_000),
    ("alexnet5", 700_000, 1_000_000),
    ("alexnet7", 1_800_000, 2_000_000),
    ("resnet20", 260_000, 280_000),  # He et al. report 0.27M
    ("resnet32", 450_000, 480_000),  # 0.46M
])
def test_parameter_counts(name, low, high):
    assert low <= count_parameters(create_model(name, 10)) <= high


def test_alexnet_puts_batch_norm_after_the_activation_and_dropout_before_the_last_two_linears():
    model = create_model("alexnet5", 10, dropout=0.4)
    kinds = [type(m) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ReLU, nn.BatchNorm2d))]
    assert kinds[:3] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]
    layers = [m for m in model if isinstance(m, (nn.Linear, nn.Dropout))]
    assert [type(m) for m in layers] == [nn.Linear, nn.Dropout, nn.Linear, nn.Dropout, nn.Linear]
    assert count_parameters(create_model("alexnet5", 10, dropout=0.0)) == count_parameters(model)


def test_alexnet_dropout_defaults_to_half():
    assert {d.p for d in _modules(create_model("alexnet7", 10), nn.Dropout)} == {0.5}


def test_ff_uses_sigmoids_and_the_hidden_option():
    model = create_model("ff", 10, hidden=[100, 100], batch_norm=False)
    assert len(_modules(model, nn.Sigmoid)) == 2
    assert count_parameters(model) == count_parameters(create_model("ff-2x100", 10, batch_norm=False))
    assert count_parameters(model) == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert len(_modules(create_model("ff", 10, hidden=(50, 40, 30)), nn.Linear)) == 4


def test_width_option_scales_the_modern_models():
    for name in ("resnet9", "preact_resnet18", "vgg_bn"):
        small, large = (count_parameters(create_model(name, 10, width=w)) for w in (8, 16))
        assert 3.5 < large / small < 4.1, name  # conv weights grow with width squared


def test_resnet_depth_sets_the_number_of_blocks():
    for depth in (8, 14, 20, 26, 32):
        assert len(_modules(create_model(f"resnet{depth}", 10), models.BasicBlock)) == 3 * (depth - 2) // 6


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(UsageError, match=r"unknown model 'lenet6'.*alexnet5.*lenet5"):
        create_model("lenet6", 10)


@pytest.mark.parametrize("name, kwargs, needle", [
    ("lenet5", {"width": 32}, "'width'"),
    ("ff-2x100", {"hidden": (5,)}, "'hidden'"),
    ("resnet9", {"widht": 16}, "'widht'.*width"),
    ("resnet9", {"width": 0}, "width"),
    ("ff", {"hidden": []}, "hidden"),
    ("ff", {"hidden": [10, -1]}, "hidden"),
    ("lenet5", {"dropout": 1.5}, "dropout"),
    ("lenet5", {"in_chans": 0}, "in_chans"),
    ("lenet5", {"image_size": 10}, "image_size >= 12"),
])
def test_bad_options_name_the_option(name, kwargs, needle):
    with pytest.raises(UsageError, match=needle):
        create_model(name, 10, **kwargs)


@pytest.mark.parametrize("num_classes", [1, 0, 2.5, True])
def test_bad_number_of_classes(num_classes):
    with pytest.raises(UsageError, match="num_classes"):
        create_model("lenet5", num_classes)


def test_register_model_adds_a_builder_with_its_own_options():
    @register_model("tiny-test-net")
    def tiny(num_classes, in_chans, image_size, dropout, batch_norm, hidden=4):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size ** 2, hidden),
                             nn.Linear(hidden, num_classes))

    try:
        assert "tiny-test-net" in list_models()
        assert count_parameters(create_model("tiny-test-net", 3, hidden=2)) == 784 * 2 + 2 + 2 * 3 + 3
        with pytest.raises(UsageError, match="'depth'"):
            create_model("tiny-test-net", 3, depth=2)
        with pytest.raises(ValueError, match="twice"):
            register_model("tiny-test-net")(tiny)
    finally:
        models._REGISTRY.pop("tiny-test-net")
        registry.MODELS.pop("tiny-test-net")


def test_count_parameters_skips_frozen_ones():
    model = create_model("lenet5", 10)
    total = count_parameters(model)
    model[0][0].weight.requires_grad_(False)
    assert count_parameters(model) == total - 6 * 25


def test_torch_free_registry_lists_exactly_the_builders_and_their_options():
    assert registry.model_names() == list_models()
    for name in list_models():
        assert registry.MODELS[name].options == {k: (list(v) if isinstance(v, tuple) else v)
                                                 for k, v in models.builder_options(name).items()}, name


@pytest.mark.parametrize("name,options,fragment", [
    ("nosuch", {}, "unknown model 'nosuch'"), ("resnet9", {"depth": 3}, "no option 'depth'"),
    ("resnet9", {"width": 0}, "width"), ("resnet9", {"width": 10 ** 9}, "width"), ("resnet9", {"width": "8"}, "width"),
    ("ff", {"hidden": []}, "hidden"), ("ff", {"hidden": [4, -1]}, "hidden"), ("lenet5", [], "mapping"),
    (3, {}, "unknown model"),
])
def test_registry_refuses_bad_names_and_options_without_torch(name, options, fragment):
    with pytest.raises(UsageError, match=fragment):
        registry.check_model(name, options)


def test_each_model_is_declared_once_in_the_registry_and_its_builder_found_by_path():
    from pathlib import Path

    assert "@register_model(" not in Path(models.__file__).read_text()  # names are spelled in kfold.registry only
    for name, spec in registry.MODELS.items():
        module, _, function = spec.builder.partition(":")
        assert module == "kfold.nn.models" and callable(getattr(models, function)), name
    with pytest.raises(ValueError, match="twice"):
        registry.declare_model("lenet5", "again", "kfold.nn.models:lenet5")
