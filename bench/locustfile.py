"""Locust peer for the trafficgen benchmark (started by bench/bench.py).

One request type, like the other peers: GET $PEER_PATH (default /orders/1).
LOCUST_RPS_PER_USER sets a constant throughput per user (the total rate is
users x that); 0 means no wait at all (closed loop, for the maximum).
"""

import os

from locust import FastHttpUser, constant, constant_throughput, task

PATH = os.environ.get("PEER_PATH", "/orders/1")
PER_USER = float(os.environ.get("LOCUST_RPS_PER_USER", "0"))


class OrdersUser(FastHttpUser):
    wait_time = constant_throughput(PER_USER) if PER_USER > 0 else constant(0)

    @task
    def get_order(self):
        self.client.get(PATH, name="orders")
