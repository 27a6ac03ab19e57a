"""A plain pipeline module of our own, patched through extra targets: lets the
reliability tests control return values and exception objects exactly."""

RESULT = object()
FAILURE = RuntimeError("compile failed on purpose")


def convert(model, target="loihi2"):
    return RESULT


def compile_model(model, target="loihi2"):
    raise FAILURE


def interrupt(model):
    raise KeyboardInterrupt("stop")


EXTRA_TARGETS = ("pipeline_kit:convert=conversion,pipeline_kit:compile_model=compilation,"
                 "pipeline_kit:interrupt=conversion")
