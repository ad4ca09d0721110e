"""The code-competition stack's review findings, part 2 (part 1: ``test_code_review_fixes.py``): the manifest is
validated whole (D), the notebook API checks its keywords (G), the network guard covers every lookup and send
(I), and the uploaded copies of a run's files hold no local path nor host name. Fast, but for one marked slow
test that trains and packages a tiny run.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from kfold.errors import DataError, UsageError


# ---------------------------------------------------------------- D: the manifest is validated whole

def _edit(change):
    def damage(pkg):
        from kfold.files import package as pk

        path = pkg / "dataset" / pk.MANIFEST
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))
    return damage


def _set(key, value):
    def change(manifest):
        *parents, last = key.split(".")
        target = manifest
        for name in parents:
            target = target[name] if not name.isdigit() else target[int(name)]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return _edit(change)


MANIFESTS = {  # name -> (damage, the field the one line names)
    "classes missing": (_set("classes", KeyError), "'classes' is missing"),
    "classes a string": (_set("classes", "0123456789"), "'classes'"),
    "classes twice": (_set("classes", ["0", "0"]), "'classes'"),
    "classes numbers": (_set("classes", [0, 1]), "'classes'"),
    "classes empty": (_set("classes", []), "'classes'"),
    "sample missing": (_set("sample", KeyError), "'sample' is missing"),
    "sample escapes": (_set("sample", "../secret.csv"), "'sample'"),
    "sample absolute": (_set("sample", "/etc/passwd"), "'sample'"),
    "sample empty": (_set("sample", ""), "'sample'"),
    "recipe without tta": (_set("recipe.tta", KeyError), "'recipe.tta' is missing"),
    "recipe method unknown": (_set("recipe.method", "median"), "'recipe.method'"),
    "recipe tta zero": (_set("recipe.tta", 0), "'recipe.tta'"),
    "recipe tta text": (_set("recipe.tta", "1"), "'recipe.tta'"),
    "recipe tta bool": (_set("recipe.tta", True), "'recipe.tta'"),
    "recipe seed negative": (_set("recipe.seed", -1), "'recipe.seed'"),
    "recipe seed too large": (_set("recipe.seed", 2**32), "'recipe.seed'"),
    "recipe seed float": (_set("recipe.seed", 1.5), "'recipe.seed'"),
    "recipe tiebreak": (_set("recipe.tiebreak", "coin"), "'recipe.tiebreak'"),
    "recipe threads zero": (_set("recipe.threads", 0), "'recipe.threads'"),
    "recipe batch text": (_set("recipe.batch_size", "big"), "'recipe.batch_size'"),
    "recipe device": (_set("recipe.device", "tpu"), "'recipe.device'"),
    "recipe unknown key": (_set("recipe.pickle", "x"), "'recipe.pickle'"),
    "models empty": (_set("models", []), "'models' is empty"),
    "model a string": (_set("models", ["models/run"]), "'models[0]'"),
    "model extra key": (_set("models.0.path", "/tmp"), "'models[0]'"),
    "model dir escapes": (_set("models.0.dir", "../../elsewhere"), "'models[0].dir'"),
    "model dir escapes inside": (_set("models.0.dir", "models/run/../../.."), "'models[0].dir'"),
    "model dir absolute": (_set("models.0.dir", "/home/alice/runs/run"), "'models[0].dir'"),
    "model dir outside models": (_set("models.0.dir", "wheels"), "'models[0].dir'"),
    "model dir dotted": (_set("models.0.dir", "models/./run"), "'models[0].dir'"),
    "model run with a slash": (_set("models.0.run", "a/b"), "'models[0].run'"),
    "folds empty": (_set("models.0.folds", []), "'models[0].folds'"),
    "fold as text": (_set("models.0.folds", ["0"]), "'models[0].folds'"),
    "fold as bool": (_set("models.0.folds", [False]), "'models[0].folds'"),
    "fold twice": (_set("models.0.folds", [0, 0]), "'models[0].folds'"),
    "fold negative": (_set("models.0.folds", [-1]), "'models[0].folds'"),
    "fold not in the files": (_set("models.0.folds", [0, 1]), "fold 1's weights models/run/fold1/model.safetensors"),
    "load options a list": (_set("load_options", ["train_csv"]), "'load_options'"),
    "load option unknown": (_set("load_options", {"bogus": 1}), "'load_options.bogus' is not a layout option"),
    "load option path escapes": (_set("load_options", {"train_csv": "../train.csv"}), "'load_options.train_csv'"),
    "load option path absolute": (_set("load_options", {"image_dir": "/data/images"}), "'load_options.image_dir'"),
    "load option of another type": (_set("load_options", {"image_size": "28"}), "'load_options.image_size'"),
    "load option bool": (_set("load_options", {"channels": True}), "'load_options.channels'"),
    "input a number": (_set("input", 28), "'input'"),
    "input unknown key": (_set("input", {"image_size": 28, "depth": 3}), "'input'"),
    "input size zero": (_set("input", {"image_size": 0}), "'input.image_size'"),
    "input two channels": (_set("input", {"channels": 2}), "'input.channels'"),
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_a_hostile_manifest_is_refused_in_one_line_naming_its_field(tmp_path, name):
    from packages import write_fake_package

    from kfold.files import package as pk

    damage, words = MANIFESTS[name]
    pkg = write_fake_package(tmp_path / "pkg")
    pk.read_package(pkg)  # valid before
    damage(pkg)
    with pytest.raises(DataError) as caught:
        pk.read_package(pkg)
    message = str(caught.value)
    assert message.startswith(f"{pkg / 'dataset' / pk.MANIFEST}: ") and "\n" not in message, message
    assert words in message, message


def test_rehearse_of_a_package_without_classes_is_one_line_not_a_traceback(tmp_path):
    from packages import write_fake_package
    from test_kaggle_loop import kfold, one_error_line

    pkg = write_fake_package(tmp_path / "pkg")
    _set("classes", KeyError)(pkg)
    done = kfold("rehearse", pkg, "--data", tmp_path, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    one_error_line(done, "key 'classes' is missing")


def test_the_manifests_tables_follow_their_sources():
    import dataclasses

    from kfold.data.layouts import LoadOptions
    from kfold.files import package_fields as fields
    from kfold.scoring import ensemble

    assert set(fields.LOAD_OPTION_TYPES) == {f.name for f in dataclasses.fields(LoadOptions)}
    assert fields.RECIPE_METHODS == ensemble.METHODS and fields.RECIPE_TIEBREAKS == ensemble.TIEBREAKS
    assert fields.MAX_SEED == ensemble.MAX_SEED


# ---------------------------------------------------------------- G: the notebook API checks its keywords

PACKAGE_KWARGS = [  # (keywords, the parameter the one line names)
    ({"load_options": {"bogus": 1}}, "load_options: unknown option 'bogus'"),
    ({"load_options": ["image_size"]}, "load_options=['image_size']"),
    ({"load_options": {"image_size": "28"}}, "load_options['image_size']='28'"),
    ({"load_options": {"channels": 2}}, "channels"),
    ({"load_options": {"train_csv": 7}}, "load_options['train_csv']=7"),
    ({"load_options": {"target": 1}}, "load_options['target']=1"),
    ({"threads": "4"}, "threads='4'"),
    ({"threads": 0}, "threads=0"),
    ({"rehearse": "no"}, "rehearse='no'"),
    ({"time_limit": 0}, "time_limit=0"),
    ({"time_limit": float("nan")}, "time_limit=nan"),
    ({"time_limit": "9"}, "time_limit='9'"),
    ({"data": 3}, "data=3"),
]


@pytest.mark.parametrize("kwargs, words", PACKAGE_KWARGS, ids=[w for _, w in PACKAGE_KWARGS])
def test_kfold_package_refuses_bad_keywords_in_one_usage_line(tmp_path, kwargs, words):
    import kfold

    with pytest.raises(UsageError) as caught:
        kfold.package([str(tmp_path / "run")], "kmnist-practice", "alice", tmp_path / "pkg", **kwargs)
    assert not isinstance(caught.value, TypeError) and words in str(caught.value), str(caught.value)
    assert not (tmp_path / "pkg").exists()


SUBMIT_KWARGS = [
    ({"poll_interval": 0}, "poll_interval=0"),
    ({"poll_interval": -1.0}, "poll_interval=-1.0"),
    ({"poll_interval": float("inf")}, "poll_interval=inf"),
    ({"poll_interval": "5"}, "poll_interval='5'"),
    ({"dataset_wait": 0}, "dataset_wait=0"),
    ({"kernel_wait": None}, "kernel_wait=None"),
    ({"kernel_wait": float("nan")}, "kernel_wait=nan"),
    ({"wait": "60"}, "wait='60'"),
    ({"wait": 0}, "wait=0"),
    ({"wait": True}, "wait=True"),
    ({"timeout": 1.5}, "timeout=1.5"),
    ({"timeout": 0}, "timeout=0"),
    ({"max_differing": 1}, "max_differing=1"),
    ({"max_differing": True}, "max_differing=True"),
    ({"accelerator": "TpuV38"}, "accelerator='TpuV38'"),
    ({"accelerator": "gpu"}, "accelerator"),
    ({"accelerator": 1}, "accelerator=1"),
    ({"log": 5}, "log=5"),
    ({"echo": "print"}, "echo='print'"),
    ({"poll": 5}, "poll=...: not an option of submit_code"),
]


@pytest.mark.parametrize("kwargs, words", SUBMIT_KWARGS, ids=[w for _, w in SUBMIT_KWARGS])
def test_kfold_submit_code_refuses_bad_keywords_in_one_usage_line(tmp_path, kwargs, words):
    import kfold
    from packages import write_fake_package

    pkg = write_fake_package(tmp_path / "pkg")
    with pytest.raises(UsageError) as caught:
        kfold.submit_code(pkg, "kmnist-practice", "first", **kwargs)
    assert not isinstance(caught.value, TypeError) and words in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kwargs, words", [({"timeout": "60"}, "timeout='60'"), ({"timeout": 0}, "timeout=0"),
                                           ({"time_limit": -1}, "time_limit=-1"), ({"data": 1.5}, "data=1.5")])
def test_kfold_rehearse_refuses_bad_keywords_in_one_usage_line(tmp_path, kwargs, words):
    import kfold

    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(".", r"\.")):
        kfold.rehearse(tmp_path, **kwargs)


# ---------------------------------------------------------------- I: the network guard covers every lookup and send

OUTSIDE_PROBES = {  # name -> a call that reaches past loopback without the guard
    "getaddrinfo": "socket.getaddrinfo('example.com', 443)",
    "getaddrinfo bytes": "socket.getaddrinfo(b'example.com', 443)",
    "create_connection": "socket.create_connection(('192.0.2.1', 9), timeout=1)",
    "connect": "socket.socket().connect(('192.0.2.1', 9))",
    "connect_ex": ("assert socket.socket().connect_ex(('192.0.2.1', 9)) == errno.ENETUNREACH, 'not refused'; "
                   "raise OSError(\"kfold rehearse's guard: connect_ex gave ENETUNREACH\")"),
    "gethostbyname": "socket.gethostbyname('example.com')",
    "gethostbyname_ex": "socket.gethostbyname_ex('example.com')",
    "gethostbyaddr": "socket.gethostbyaddr('192.0.2.1')",
    "getnameinfo": "socket.getnameinfo(('192.0.2.1', 80), 0)",
    "sendto": "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('192.0.2.1', 9))",
    "sendto with flags": "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', 0, ('192.0.2.1', 9))",
    "sendto ipv6": "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'x', ('2001:db8::1', 9))",
    "sendmsg": "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendmsg([b'x'], [], 0, ('192.0.2.1', 9))",
}
LOOPBACK_PROBES = {  # name -> a call that must still work
    "gethostbyname localhost": "socket.gethostbyname('localhost')",
    "getaddrinfo 127.0.0.1": "socket.getaddrinfo('127.0.0.1', 80)",
    "getnameinfo loopback": "socket.getnameinfo(('127.0.0.1', 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)",
    "sendto loopback": "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))",
    "sendmsg loopback": "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendmsg([b'x'], [], 0, ('127.0.0.1', 9))",
    "tcp loopback": ("server = socket.create_server(('127.0.0.1', 0)); "
                     "socket.create_connection(server.getsockname(), timeout=5).close()"),
    "unix socket pair": "a, b = socket.socketpair(); a.send(b'x'); b.recv(1)",
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """Every probe run in one interpreter whose sitecustomize is the guard; name -> 'ok' or the error text."""
    import subprocess

    from kfold.flows.sandbox import GUARD

    folder = tmp_path_factory.mktemp("guard")
    (folder / "sitecustomize.py").write_text(GUARD)
    script = ["import errno, json, socket", "out = {}"]
    for name, code in {**OUTSIDE_PROBES, **LOOPBACK_PROBES}.items():
        script += [f"try:\n    {code}\n    out[{name!r}] = 'ok'\nexcept Exception as exc:\n"
                   f"    out[{name!r}] = type(exc).__name__ + ': ' + str(exc)"]
    script += ["print(json.dumps(out))"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    done = subprocess.run([sys.executable, "-c", "\n".join(script)], env={**env, "PYTHONPATH": str(folder)},
                          capture_output=True, text=True, timeout=120, cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(OUTSIDE_PROBES))
def test_the_guard_refuses_every_way_past_loopback(guarded, name):
    assert "kfold rehearse's guard" in guarded[name], guarded[name]


@pytest.mark.parametrize("name", sorted(LOOPBACK_PROBES))
def test_the_guard_lets_loopback_through(guarded, name):
    assert guarded[name] == "ok", guarded[name]


# ---------------------------------------------------------------- the uploaded copies hold no local path nor host

@pytest.mark.slow
def test_a_real_package_uploads_no_local_data_path_nor_host_name_in_its_json(tmp_path):
    import platform

    from packages import train_tiny_run

    from kfold.files import package as pk
    from kfold.flows.package import package

    run, comp = train_tiny_run(tmp_path)
    assert json.loads((run / "config.json").read_text())["data"]  # the run itself keeps them
    result = package([run], "toy-practice", "alice", tmp_path / "pkg", threads=1, rehearse=False,
                     echo=lambda line: None)
    pk.read_package(result.path)  # the stricter manifest reads back
    dataset = result.path / pk.DATASET
    jsons = sorted((dataset / pk.MODELS).rglob("*.json"))
    assert {"config.json", "meta.json"} <= {p.name for p in jsons}
    for path in jsons:
        data = json.loads(path.read_text())
        assert "data" not in data and "host" not in data, path
        assert str(comp.resolve()) not in path.read_text() and str(comp) not in path.read_text(), path
        if platform.node():
            assert f'"{platform.node()}"' not in path.read_text(), path
    for fold in (0, 1):  # the weights' header too; the tensors' bytes as they were
        ours, theirs = _safetensors(dataset / f"models/run/fold{fold}/model.safetensors"), _safetensors(
            run / f"fold{fold}/model.safetensors")
        assert "host" in theirs[0] and "host" not in ours[0] and "data" not in ours[0]
        assert ours[0] == {k: v for k, v in theirs[0].items() if k != "host"} and ours[1] == theirs[1]
    packaged_meta = json.loads((dataset / "models/run/fold0/meta.json").read_text())
    original_meta = json.loads((run / "fold0/meta.json").read_text())
    assert packaged_meta == {k: v for k, v in original_meta.items() if k != "host"}


def _safetensors(path: Path) -> tuple[dict, bytes]:
    """(the header's kfold metadata, the tensors' bytes) of a safetensors file."""
    import struct

    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    return json.loads(json.loads(raw[8:8 + size])["__metadata__"]["kfold"]), raw[8 + size:]
