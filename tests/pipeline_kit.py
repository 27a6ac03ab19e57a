"""A plain pipeline module of our own, patched through extra targets: lets the
reliability tests control return values and exception objects exactly."""

import asyncio

from opentelemetry import trace

RESULT = object()
FAILURE = RuntimeError("compile failed on purpose")
# span context current inside each run of ``deploy``: the context crosses the await
SEEN_IN_DEPLOY = []


def convert(model, target="loihi2"):
    """RESULT; a callable model is called first (a conversion that takes a while)."""
    return model(model, target) if callable(model) else RESULT


def compile_model(model, target="loihi2"):
    raise FAILURE


def interrupt(model):
    raise KeyboardInterrupt("stop")


async def deploy(model, target="loihi2", fail=False, wait=0.0):
    await asyncio.sleep(wait)
    SEEN_IN_DEPLOY.append(trace.get_current_span().get_span_context())
    if fail:
        raise FAILURE
    return RESULT


EXTRA_TARGETS = ("pipeline_kit:convert=conversion,pipeline_kit:compile_model=compilation,"
                 "pipeline_kit:interrupt=conversion,pipeline_kit:deploy=deployment")
