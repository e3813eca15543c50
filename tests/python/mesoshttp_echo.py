#!/usr/bin/env python3
"""A scheduler on UNMODIFIED mesoshttp 0.4.2, driven by the Rust integration tests.

Usage: mesoshttp_echo.py URL [--ca CA_FILE] [--timeout SECONDS]

Subscribes to the master at URL (http:// or https://; with --ca the server
certificate is verified against CA_FILE, else against the system trust store)
with HTTP Basic credentials from MESOS_PRINCIPAL / MESOS_SECRET, accepts one
offer to launch `echo hello`, and waits for the task to end.

stdout carries JSON lines only:
  {"event": "subscribed", "framework_id": F}
  {"event": "update", "state": S}
  {"result": S}            last line: the terminal state, "TIMEOUT", or
                           "NOT_SUBSCRIBED" when mesoshttp gave up connecting
Exit 0 if the task finished, 1 if it ended otherwise, 2 on timeout.
"""

import argparse
import json
import logging
import os
import sys
import threading
import time

import requests
from mesoshttp.client import MesosClient

TERMINAL = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--ca")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)

    client = MesosClient(mesos_urls=[args.url], frameworkName="mesoshttp-echo",
                         max_reconnect=1)
    principal = os.environ.get("MESOS_PRINCIPAL")
    if principal:
        client.requests_auth = requests.auth.HTTPBasicAuth(
            principal, os.environ.get("MESOS_SECRET", ""))
        client.set_credentials(principal, None)
    if args.ca:
        client.verify = args.ca

    done = threading.Event()
    state = {"launched": False, "result": None}
    lock = threading.Lock()

    def on_subscribed(driver):
        emit({"event": "subscribed", "framework_id": client.frameworkId})

    def on_offers(offers):
        for offer in offers:
            info = offer.get_offer()
            with lock:
                launch = not state["launched"]
                state["launched"] = True
            if not launch:
                offer.decline()
                continue
            task = {
                "name": "echo",
                "task_id": {"value": "echo-1"},
                "agent_id": {"value": info["agent_id"]["value"]},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
                "command": {"value": "echo hello"},
            }
            offer.accept([task])

    def on_update(update):
        s = update["status"]["state"]
        emit({"event": "update", "state": s})
        if s in TERMINAL:
            state["result"] = s
            done.set()

    client.on(MesosClient.SUBSCRIBED, on_subscribed)
    client.on(MesosClient.OFFERS, on_offers)
    client.on(MesosClient.UPDATE, on_update)
    thread = threading.Thread(target=client.register, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.timeout
    # register() returns when it gives up (e.g. the master refused us).
    while not done.is_set() and thread.is_alive() and time.monotonic() < deadline:
        done.wait(0.1)
    finished = done.is_set()
    if not finished and not thread.is_alive():
        emit({"result": "NOT_SUBSCRIBED"})
        os._exit(1)
    client.tearDown()
    result = state["result"] if finished else "TIMEOUT"
    emit({"result": result})
    sys.stdout.flush()
    os._exit(0 if result == "TASK_FINISHED" else (2 if result == "TIMEOUT" else 1))


if __name__ == "__main__":
    main()
