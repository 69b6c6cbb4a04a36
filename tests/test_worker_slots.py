"""The worker's slot bookkeeping as the daemon's scheduler relies on it: once a generation's summary is
sent, its slot is free, so a job the daemon starts on reading that summary never finds the pair busy
(the race the 8-client load test caught on a loaded machine)."""
import os

from daemon.registry import Registry
from daemon.worker import Worker
from tokint_local.config import load_models
from tokint_local.events import GenerationRequest


def test_a_generation_gives_its_slot_back_before_its_summary_is_sent(tiny_models_toml):
    sent = []

    class Recording(Worker):
        def send(self, kind, job=None, content=None):
            slots = self.slots.get("tiny")
            sent.append((kind, slots.in_use if slots else None))
            if kind == "summary":
                self.batcher.post(self.handle, {"op": "exit"})

    read_end, write_end = os.pipe()
    worker = Recording(Registry(load_models(tiny_models_toml)), write_end, read_end)
    try:
        request = GenerationRequest(prompt="one slot", max_tokens=5).to_wire()
        worker.batcher.post(worker.handle, {"op": "generate", "job": "j1", "pair": "tiny", "request": request})
        worker.serve()  # returns once the generation has ended and the exit posted on its summary ran
    finally:
        os.close(read_end)
        os.close(write_end)
    kinds = [kind for kind, _ in sent]
    assert kinds[0] == "ready" and kinds[-1] == "summary" and kinds.count("token") == 5
    assert sent[-1] == ("summary", 0)  # the slot is free when the daemon hears of the end
    assert ("token", 1) in sent  # and it was held while the tokens went out
