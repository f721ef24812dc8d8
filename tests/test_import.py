import subprocess
import sys

import pytest


def test_import_featx_pulls_in_no_heavy_dependency():
    code = (
        "import sys, featx; "
        "print(' '.join(m for m in ('torch', 'transformers', 'optimum', 'flask', 'sklearn', "
        "'pyspark') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_command_line_imports_pyspark_only_in_spark_commands():
    code = "import sys, featx.cli; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_api_is_explicit():
    import featx

    assert set(featx.__all__) >= {
        "load",
        "export",
        "Encoder",
        "OnnxEncoder",
        "HashEncoder",
        "Pooling",
    }
    for name in featx.__all__:
        assert hasattr(featx, name), name


def test_docstring_examples_run():
    import doctest

    import featx.embedder
    import featx.encoders.fake
    import featx.predictor
    import featx.tagging.crf
    import featx.tagging.tags

    modules = (featx.encoders.fake, featx.embedder, featx.predictor)
    for module in (*modules, featx.tagging.crf, featx.tagging.tags):
        result = doctest.testmod(module)
        assert result.attempted >= 1 and result.failed == 0, module.__name__


def test_the_public_api_is_small_listed_and_moved_names_warn():
    import featx

    assert len(featx.__all__) <= 17
    assert sorted(dir(featx)) == sorted(featx.__all__)
    with pytest.warns(DeprecationWarning, match="featx.ModelLoadError moved to featx.errors"):
        from featx.errors import ModelLoadError

        assert featx.ModelLoadError is ModelLoadError
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = featx.nothing


def test_the_public_api_imports_without_any_extra_and_fails_only_when_called(tmp_path):
    # Blocked modules cannot be found, as if the extras were not installed.
    code = (
        "import sys\n"
        "class Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers', 'onnx', 'optimum',\n"
        "                                  'pyspark', 'flask'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Blocked())\n"
        "import featx\n"
        "from featx import *\n"
        "assert all(hasattr(featx, n) for n in featx.__all__)\n"
        "for call in (lambda: featx.export('minilm', sys.argv[1]),\n"
        "             lambda: featx.load('minilm', backend='torch'),\n"
        "             lambda: featx.finetune(['a', 'b'] * 2, [0, 1] * 2, out=sys.argv[1])):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as err:\n"
        "        print(err)\n"
        "try:\n"
        "    import featx.spark\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert len(lines) == 4, out.stdout + out.stderr
    for line in lines[:3]:
        assert "the 'export' extra" in line and "pip install torch==2.13.0 'featx[export]'" in line
    assert "the 'spark' extra" in lines[3] and "pip install 'featx[spark]'" in lines[3]
    assert not (tmp_path / "out").exists()
