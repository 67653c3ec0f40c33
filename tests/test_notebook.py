"""featinv in a real Jupyter kernel: a plain ``featinv.invert(...)`` shows a progress widget and the
image forming, redrawn in place, then the result with its numbers; ``live=False`` shows none."""

import base64
import queue

import pytest
from jupyter_client.manager import start_new_kernel


@pytest.fixture(scope="module")
def kernel():
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def execute(client, code, timeout=240):
    """Run ``code`` in the kernel; every output message it sent (iopub), in order."""
    msg_id = client.execute(code)
    messages = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the kernel did not finish: {[m['msg_type'] for m in messages]}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages
        messages.append(msg)


RUN = (
    "import featinv\n"
    "r = featinv.invert('skimage:coffee', model='resnet18', weights='none', layers='res1', size=32, steps=30{})\n"
    "print(r.status, r.steps)"
)


def test_invert_in_a_notebook_shows_the_image_forming_then_the_numbers(kernel):
    messages = execute(kernel, RUN.format(""))
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert not errors, errors
    kinds = [m["msg_type"] for m in messages]
    images = [
        m
        for m in messages
        if m["msg_type"] in ("display_data", "update_display_data") and "image/png" in m["content"]["data"]
    ]
    first, updates = images[0], images[1:]
    assert first["msg_type"] == "display_data" and len(updates) >= 3, kinds  # every 10 steps, then the end
    display_id = first["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in updates)  # redrawn in place
    pngs = [base64.b64decode(m["content"]["data"]["image/png"]) for m in images]
    assert len(set(pngs[:-1])) == len(pngs) - 1, "the image did not change between redraws"
    assert "step 10/30, loss" in updates[0]["content"]["data"]["text/plain"]
    final = updates[-1]["content"]["data"]["text/plain"]
    assert "done after 30 steps; PSNR" in final and "SSIM" in final and "feature error" in final
    widgets = [m for m in messages if "application/vnd.jupyter.widget-view+json" in m["content"].get("data", {})]
    assert widgets, "no progress widget (tqdm.auto with ipywidgets)"
    stderr = "".join(
        m["content"]["text"] for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )
    assert "IProgress not found" not in stderr
    stdout = "".join(
        m["content"]["text"] for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )
    assert "done 30" in stdout


@pytest.mark.parametrize("off", ["live=False", "quiet=True"])
def test_the_live_view_switches_off(kernel, off):
    messages = execute(kernel, RUN.format(", " + off))
    shown = [
        m
        for m in messages
        if m["msg_type"] in ("display_data", "update_display_data") and "image/png" in m["content"]["data"]
    ]
    assert not shown and not [m for m in messages if m["msg_type"] == "error"]
