#!/usr/bin/env python3
"""A persistent-volume round trip on UNMODIFIED pymesos 0.3.15, driven by the Rust tests.

Steps, one per offer (each answered with ACCEPT, operations in v1 JSON):

  1. RESERVE cpus, mem and disk for --role (principal = ours) and CREATE a
     volume (--volume-id, container_path "data") on the reserved disk.
  2. LAUNCH a task on the reserved resources and the volume that writes
     --token into data/token.
  3. once it finished, LAUNCH a second task (a new executor, so a new sandbox)
     that succeeds only if data/token holds --token.
  4. once it finished, DESTROY the volume and UNRESERVE everything.
  5. on the next offer that has nothing reserved for --role, print the result and
     tear down.

stdout carries one JSON line per step ({"step": ..., ...}) and a final
{"result": "ok"|"timeout"|"error", "updates": [...], "operations": [...]}.
Exit 0 only when every step happened.
"""

import argparse
import copy
import getpass
import json
import os
import socket
import sys
import threading
import time

from pymesos import MesosSchedulerDriver, Scheduler

CPUS, MEM, DISK = 0.1, 32.0, 8.0


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def scalar(name, value):
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def reserved_for(resource, role):
    stack = resource.get("reservations") or []
    return bool(stack) and stack[-1].get("role") == role


def is_volume(resource, volume_id):
    return ((resource.get("disk") or {}).get("persistence") or {}).get("id") == volume_id


class VolumeScheduler(Scheduler):
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.step = 1
        self.updates = []
        self.operation_updates = []
        self.failed = None

    def reservation(self):
        return [{"type": "DYNAMIC", "role": self.args.role, "principal": self.args.principal}]

    def reserved(self, name, value):
        r = scalar(name, value)
        r["reservations"] = self.reservation()
        return r

    def volume(self):
        v = self.reserved("disk", DISK)
        v["disk"] = {
            "persistence": {"id": self.args.volume_id, "principal": self.args.principal},
            "volume": {"container_path": "data", "mode": "RW"},
        }
        return v

    def task(self, offer, name, command):
        res = [self.reserved("cpus", CPUS), self.reserved("mem", MEM), self.volume()]
        return {
            "task_id": {"value": name},
            "agent_id": {"value": offer["agent_id"]["value"]},
            "name": name,
            "resources": res,
            "command": {"value": command, "shell": True},
        }

    def resourceOffers(self, driver, offers):
        for offer in offers:
            resources = offer.get("resources", [])
            has_volume = any(is_volume(r, self.args.volume_id) for r in resources)
            has_reserved = any(reserved_for(r, self.args.role) for r in resources)
            with self.lock:
                step = self.step
            if step == 1 and not has_reserved:
                ops = [
                    {"type": "RESERVE", "id": {"value": "reserve-1"},
                     "reserve": {"resources": [self.reserved("cpus", CPUS),
                                               self.reserved("mem", MEM),
                                               self.reserved("disk", DISK)]}},
                    {"type": "CREATE", "id": {"value": "create-1"},
                     "create": {"volumes": [self.volume()]}},
                ]
                emit({"step": "reserve+create", "offer": offer["id"]["value"]})
                self.advance(2)
                driver.acceptOffers([offer["id"]], ops, {"refuse_seconds": 0.1})
            elif step == 2 and has_volume:
                # Prints how many mounts sit at the volume's path in the
                # task's own mount table (1 under --launcher=linux).
                cmd = ("echo %s > data/token && "
                       "grep -c \" $(pwd)/data \" /proc/self/mountinfo; %s") % (
                           self.args.token, self.args.writer_extra or "true")
                emit({"step": "write"})
                self.advance(3)
                driver.acceptOffers([offer["id"]], [{"type": "LAUNCH", "launch": {
                    "task_infos": [self.task(offer, "writer", cmd)]}}], {"refuse_seconds": 0.1})
            elif step == 4 and has_volume:
                cmd = 'test "$(cat data/token)" = %s && %s' % (
                    self.args.token, self.args.reader_extra or "pwd")
                emit({"step": "read"})
                self.advance(5)
                driver.acceptOffers([offer["id"]], [{"type": "LAUNCH", "launch": {
                    "task_infos": [self.task(offer, "reader", cmd)]}}], {"refuse_seconds": 0.1})
            elif step == 6 and has_volume:
                ops = [
                    {"type": "DESTROY", "id": {"value": "destroy-1"},
                     "destroy": {"volumes": [self.volume()]}},
                    {"type": "UNRESERVE", "id": {"value": "unreserve-1"},
                     "unreserve": {"resources": [self.reserved("cpus", CPUS),
                                                 self.reserved("mem", MEM),
                                                 self.reserved("disk", DISK)]}},
                ]
                emit({"step": "destroy+unreserve"})
                self.advance(7)
                driver.acceptOffers([offer["id"]], ops, {"refuse_seconds": 0.1})
            elif step == 7 and not has_reserved and not has_volume:
                emit({"step": "unreserved", "resources": resources})
                self.advance(8)
                driver.declineOffer(offer["id"])
                self.done.set()
            else:
                driver.declineOffer(offer["id"], {"refuse_seconds": 0.1})

    def advance(self, step):
        with self.lock:
            self.step = step

    def operationStatusUpdate(self, driver, status):
        self.record_operation(status)

    def record_operation(self, status):
        with self.lock:
            self.operation_updates.append({
                "id": (status.get("operation_id") or {}).get("value"),
                "state": status.get("state"),
                "message": status.get("message"),
            })

    def statusUpdate(self, driver, update):
        record = {
            "task_id": update.get("task_id", {}).get("value"),
            "state": update.get("state"),
            "message": update.get("message"),
            "reason": update.get("reason"),
        }
        with self.lock:
            self.updates.append(record)
            if record["state"] == "TASK_FINISHED" and self.step in (3, 5):
                self.step += 1
            elif record["state"] in ("TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_KILLED",
                                     "TASK_DROPPED"):
                self.failed = record
                self.done.set()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--master", required=True)
    p.add_argument("--role", required=True)
    p.add_argument("--volume-id", default="vol-1")
    p.add_argument("--token", default="token-%d" % os.getpid())
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--writer-extra", help="more shell for the writer task, after the token")
    p.add_argument("--reader-extra", help="more shell the reader task must pass")
    p.add_argument("--principal", default=os.environ.get("MESOS_PRINCIPAL"))
    p.add_argument("--secret", default=os.environ.get("MESOS_SECRET"))
    args = p.parse_args()
    sched = VolumeScheduler(args)
    framework = {
        "user": getpass.getuser(),
        "name": "pymesos-volume",
        "hostname": socket.gethostname(),
        "role": args.role,
        "principal": args.principal,
        # Tasks outlive an agent restart (the agent re-adopts them).
        "checkpoint": True,
        "failover_timeout": 0,
    }
    driver = MesosSchedulerDriver(sched, framework, args.master, use_addict=True,
                                  principal=args.principal, secret=args.secret)
    original = driver.on_event

    def on_event(event):
        # pymesos 0.3.15 has no callback for UPDATE_OPERATION_STATUS; read it here.
        if event.get("type") == "UPDATE_OPERATION_STATUS":
            sched.record_operation(copy.deepcopy(event["update_operation_status"]["status"]))
            return
        original(event)

    driver.on_event = on_event

    def finish(code, outcome):
        driver.stop(failover=False)
        joiner = threading.Thread(target=driver.join, daemon=True)
        joiner.start()
        joiner.join(3)
        with sched.lock:
            emit({"result": outcome, "updates": sched.updates,
                  "operations": sched.operation_updates, "failed": sched.failed,
                  "step": sched.step})
        os._exit(code)

    threading.Thread(target=driver.start, daemon=True).start()
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            if sched.done.wait(0.2):
                finish(0 if sched.failed is None else 1,
                       "ok" if sched.failed is None else "error")
            if time.monotonic() > deadline:
                finish(2, "timeout")
    except BaseException as e:  # noqa: B036
        emit({"exception": "%s: %s" % (type(e).__name__, e)})
        finish(1, "error")


if __name__ == "__main__":
    main()
