#!/usr/bin/env python3
"""A tiny scheduler on UNMODIFIED pymesos 0.3.15, driven by the Rust integration tests.

Modes (stdout carries only JSON lines; pymesos logs go to stderr):

  default        launch --tasks N tasks running --cmd, wait until all are terminal,
                 stop the driver (TEARDOWN) and print one line
                 {"framework_id": F, "updates": [{"task_id", "state", "agent_id", "has_uuid"}, ...]}
                 exit 0; on --timeout print the same line and exit 2.
  --long         launch one task running --cmd (default `sleep 3600`); print
                 {"framework_id": F, "running": T} once it is TASK_RUNNING, then keep running
                 until killed (SIGTERM/SIGKILL: no TEARDOWN, so the framework survives for
                 --failover-timeout). Later events are printed as event lines (below). Exit 2 if
                 the task is not running within --timeout. With --teardown-on-eof, closing this
                 process's stdin stops the driver with TEARDOWN instead (exit 0, after printing
                 {"event": "tearing down"}).
  --resubscribe F
                 subscribe with FrameworkInfo.id = F, decline all offers, print every event as
                 a line until killed. --reconcile also sends an implicit reconciliation after
                 each (re)subscription.

Event lines (--long, --resubscribe):
  {"event": "subscribed", "framework_id": F, "reregistered": bool}
  {"event": "disconnected"}
  {"event": "update", "task_id", "state", "agent_id", "has_uuid", "reason", "source", "message"}
  {"event": "error", "message": M}

On timeout (exit 2), driver failure (exit 1) or parent death (exit 3) every mode prints the
default mode's final line plus an "error" key. A driver failure is e.g. a non-2xx answer
to SUBSCRIBE or to a call: pymesos then gives up. The parent check means a crashed test
leaves no scheduler behind.
"""

import argparse
import getpass
import json
import os
import socket
import sys
import threading
import time

from pymesos import MesosSchedulerDriver, Scheduler

TERMINAL = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
}
CPUS, MEM = 0.1, 32.0
EPS = 1e-6  # offers are fixed-point (3 decimals) in Mesos; avoid float drift


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def scalar(name, value):
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def offered(offer, name):
    return sum(r.get("scalar", {}).get("value", 0.0)
               for r in offer.get("resources", []) if r.get("name") == name)


class EchoScheduler(Scheduler):
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.done = threading.Event()      # all tasks terminal (default mode)
        self.framework_id = args.resubscribe
        self.updates = []
        self.launched = 0
        self.terminal = set()
        self.running_reported = False
        self.streaming = args.long or args.resubscribe is not None
        if args.resubscribe is not None:
            self.wanted = 0
        elif args.long:
            self.wanted = 1
        else:
            self.wanted = args.tasks

    def _subscribed(self, driver, reregistered):
        if self.streaming:
            emit({"event": "subscribed", "framework_id": self.framework_id,
                  "reregistered": reregistered})
        if self.args.reconcile:
            driver.reconcileTasks([])

    def registered(self, driver, framework_id, master_info):
        self.framework_id = framework_id["value"]
        self._subscribed(driver, False)

    def reregistered(self, driver, master_info):
        self.framework_id = driver.framework_id
        self._subscribed(driver, True)

    def disconnected(self, driver):
        if self.streaming:
            emit({"event": "disconnected"})

    def error(self, driver, message):
        if self.streaming:
            emit({"event": "error", "message": message})

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus, mem = offered(offer, "cpus"), offered(offer, "mem")
            tasks = []
            with self.lock:
                while self.launched < self.wanted and cpus >= CPUS - EPS and mem >= MEM - EPS:
                    cpus -= CPUS
                    mem -= MEM
                    task_id = "pymesos-echo-%d" % self.launched
                    self.launched += 1
                    tasks.append({
                        "task_id": {"value": task_id},
                        "agent_id": {"value": offer["agent_id"]["value"]},
                        "name": task_id,
                        "resources": [scalar("cpus", CPUS), scalar("mem", MEM)],
                        "command": {"value": self.args.cmd, "shell": True},
                    })
            if tasks:
                driver.launchTasks(offer["id"], tasks)
            else:
                driver.declineOffer(offer["id"])

    def statusUpdate(self, driver, update):
        record = {
            "task_id": update.get("task_id", {}).get("value"),
            "state": update.get("state"),
            "reason": update.get("reason"),
            "message": update.get("message"),
            "agent_id": update.get("agent_id", {}).get("value"),
            "has_uuid": "uuid" in update,
        }
        with self.lock:
            self.updates.append(record)
            if record["state"] in TERMINAL:
                self.terminal.add(record["task_id"])
            all_done = self.wanted > 0 and len(self.terminal) >= self.wanted
        if self.streaming:
            if (self.args.long and record["state"] == "TASK_RUNNING"
                    and not self.running_reported):
                self.running_reported = True
                emit({"framework_id": self.framework_id, "running": record["task_id"]})
            else:
                extra = {"source": update.get("source")}
                emit(dict({"event": "update"}, **record, **extra))
        elif all_done:
            self.done.set()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--master", required=True, help="host:port of the master (no scheme)")
    p.add_argument("--tasks", type=int, default=1)
    p.add_argument("--cmd", help="the tasks' shell command (default: echo hello; "
                                 "with --long: sleep 3600)")
    p.add_argument("--user", help="FrameworkInfo.user, which the tasks run as "
                                  "(default: the invoking user)")
    p.add_argument("--teardown-on-eof", action="store_true",
                   help="with --long: tear the framework down when stdin closes")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds")
    p.add_argument("--long", action="store_true")
    p.add_argument("--resubscribe", metavar="FRAMEWORK_ID")
    p.add_argument("--reconcile", action="store_true")
    p.add_argument("--failover-timeout", type=float, default=3600.0)
    p.add_argument("--checkpoint", action="store_true",
                   help="set FrameworkInfo.checkpoint (implied by --long): tasks survive agent restarts")
    p.add_argument("--name", default="pymesos-echo")
    p.add_argument("--role", help="FrameworkInfo.role (default: none, i.e. '*')")
    p.add_argument("--principal", default=os.environ.get("MESOS_PRINCIPAL"),
                   help="HTTP Basic principal (default: $MESOS_PRINCIPAL)")
    p.add_argument("--secret", default=os.environ.get("MESOS_SECRET"),
                   help="HTTP Basic secret (default: $MESOS_SECRET; prefer the "
                        "variable, arguments are visible in ps)")
    args = p.parse_args()
    if args.cmd is None:
        args.cmd = "sleep 3600" if args.long else "echo hello"
    return args


def main():
    args = parse_args()
    sched = EchoScheduler(args)
    framework = {
        "user": args.user or getpass.getuser(),
        "name": args.name,
        "hostname": socket.gethostname(),
        "failover_timeout": args.failover_timeout,
    }
    if args.role:
        framework["role"] = args.role
    if args.checkpoint or args.long:
        framework["checkpoint"] = True
    if args.resubscribe is not None:
        framework["id"] = {"value": args.resubscribe}
    driver = MesosSchedulerDriver(sched, framework, args.master, use_addict=True,
                                  principal=args.principal, secret=args.secret)

    def result(**extra):
        with sched.lock:
            out = {"framework_id": sched.framework_id, "updates": list(sched.updates)}
        out.update(extra)
        return out

    def finish(code, teardown, **extra):
        # stop() makes the IO thread send TEARDOWN (unless failover) before it exits.
        connected = driver.connected
        driver.stop(failover=not teardown)
        if connected:
            joiner = threading.Thread(target=driver.join, daemon=True)
            joiner.start()
            joiner.join(3)
        if extra or not sched.streaming:
            emit(result(**extra))
        os._exit(code)

    stdin_closed = threading.Event()
    if args.teardown_on_eof:
        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            stdin_closed.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    parent = os.getppid()
    deadline = time.monotonic() + args.timeout
    start_error = []

    def start():
        # start() GETs /version synchronously (10 s timeout): keep it off the clock.
        try:
            driver.start()
        except Exception as e:
            start_error.append(e)

    try:
        threading.Thread(target=start, daemon=True).start()
        # Short waits: pymesos reports IO-thread failures by raising in the main thread
        # through a simulated SIGINT, which only fires between bytecodes.
        while True:
            if sched.done.wait(0.2):
                finish(0, teardown=True)
            if start_error:
                raise start_error[0]
            if os.getppid() != parent:
                finish(3, teardown=False, error="parent died")
            if stdin_closed.is_set():
                emit({"event": "tearing down"})
                finish(0, teardown=True)
            if args.resubscribe is not None:
                continue
            if args.long and sched.running_reported:
                continue
            if time.monotonic() > deadline:
                finish(2, teardown=True, error="timeout")
    except BaseException as e:  # noqa: B036 - includes pymesos's re-raised driver errors
        finish(1, teardown=False, error="%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
