"""The running studio driven through gradio_client, as automation would: check a (tiny) model, check
data and a broken file, train while watching the curve grow, answer with base and tuned, export."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(studio_url):
    from gradio_client import Client
    return Client(studio_url, verbose=False)


def curve_points(plot) -> int:
    """Train-loss points in a gr.Plot value as the client receives it."""
    if not isinstance(plot, dict) or not plot.get("plot"):
        return -1   # not redrawn this time
    fig = json.loads(plot["plot"])
    return len(fig["data"][0].get("x") or [])


def test_check_model_describes_it_and_fills_target_modules(client):
    summary, _, modules = client.predict(api_name="/load_model")
    assert "LlamaForCausalLM" in summary and "Context length: 512" in summary
    assert {"q_proj", "v_proj", "all-linear"} <= {c[1] for c in modules["choices"]}


def test_data_check_and_a_broken_file(client, tmp_path):
    from gradio_client import handle_file

    out = client.predict(api_name="/check_data")
    assert "usable rows of 300" in out[0] and "messages" in out[0]
    assert out[2] and "max length" in out[2]["plot"]                     # the histogram with its cut line
    highlighted, pair = out[-2], out[-1]
    assert any(seg["class_or_confidence"] == "loss" for seg in highlighted)
    assert pair["visible"] is False and not pair["value"]  # the demo FAQ has no pairs to show side by side

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instruction": "Hi", "output": "Hello!"}\n'
                      '{"instruction": "Bye", "output": \n'                  # cut-off JSON
                      '{"instruction": "Why?", "output": ""}\n'               # empty answer
                      '{"instruction": "Price?", "output": "79 dollars"}\n', encoding="utf-8")
    out = client.predict(handle_file(str(broken)), api_name="/upload_data")
    kind, file_box, summary, problems = out[0], out[1], out[2], out[3]
    assert kind == "file" and file_box["value"].endswith("broken.jsonl")
    assert "2 usable rows of 4" in summary
    rows = [r[0] for r in problems["value"]["data"]]
    assert rows == [2, 3], problems

    table = tmp_path / "faq.csv"          # columns of no known shape: the studio maps them itself
    table.write_text("question,answer\nHow much?,79 dollars\nWarranty?,Two years\n", encoding="utf-8")
    out = client.predict(handle_file(str(table)), api_name="/upload_data")
    assert "2 usable rows of 2" in out[2] and "mapping" in out[2]
    assert [u["value"] for u in out[8:11]] == ["question", "answer", ""] and out[11] == "mapping"

    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    client.predict(handle_file(str(empty)), api_name="/upload_data")  # refused with a message, no crash
    again = client.predict(api_name="/check_data")                   # the app still answers
    assert "usable rows of 300" in again[0]


def test_train_watch_the_curve_grow_then_compare_and_export(client):
    status = client.predict(api_name="/start_training")
    assert any(w in status for w in ("Waiting", "Loading", "Training")), status

    counts, final = [], None
    deadline = time.time() + 180
    while time.time() < deadline:
        status, _, plot, _method_plot, log, _scores = client.predict(api_name="/poll_training")  # (the cursor stays server-side)
        n = curve_points(plot)
        if n >= 0:
            counts.append(n)
        if any(w in status for w in ("Done", "Failed", "Stopped")):
            final = status
            break
        time.sleep(0.25)
    assert final and "Done" in final, final
    assert counts == sorted(counts), counts                     # the curve only grows
    assert counts[-1] == 8 and len(set(counts)) >= 2, counts    # every logged step arrived, not all at once

    runs = client.predict(api_name="/chat_runs")
    run = runs["value"]
    assert run and Path(run).is_dir()
    base, tuned, box, status = client.predict(message="How much is the Aurora Pro?", run=run, api_name="/chat")
    answer = lambda hist: "".join(p["text"] for p in hist[-1]["content"] if p.get("type") == "text")  # noqa: E731
    assert base[-1]["role"] == tuned[-1]["role"] == "assistant"
    assert answer(base) and answer(tuned)
    assert answer(base) != answer(tuned)             # the adapter changed the model

    table, select, opened, config = client.predict(api_name="/list_runs")
    assert "done" in json.dumps(table).lower() or "Done" in json.dumps(table)
    assert "max_steps: 8" in config
    zip_path = client.predict(opened["value"], api_name="/export_adapter")
    with zipfile.ZipFile(zip_path) as z:
        assert "adapter/adapter_config.json" in z.namelist()


def test_an_out_of_range_api_value_names_its_setting(client):
    with pytest.raises(Exception, match=r"LoRA rank r \(lora.r, API parameter 'lora_r'\) must be at least 1; 0"):
        client.predict(lora_r=0, api_name="/start_training")
    with pytest.raises(Exception, match=r"training.max_steps.*must be at most 1,000,000"):
        client.predict(training_max_steps=10**20, api_name="/start_training")
    status = client.predict(training_output_dir="/tmp/elsewhere", api_name="/start_training")
    assert "is a path" in status and "runs folder" in status            # refused, said on the Train tab


def test_fit_to_my_gpu_explains_itself_without_a_gpu(client):
    """On a machine without an NVIDIA GPU the button changes nothing and says why."""
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = client.predict(training_batch_size=16, api_name="/fit_to_gpu")
    assert "No NVIDIA GPU" in out[0]
