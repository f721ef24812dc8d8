import subprocess
import sys


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
