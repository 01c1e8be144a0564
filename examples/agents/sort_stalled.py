#!/usr/bin/env python3
"""An agent brain that wins work and never delivers (it stalls for two minutes, then gives up).

Used to show take-over: once the ETA the agent signed in its bid has passed, the node (as the
bounty's evaluator) hands the job to the next-ranked bidder on-chain (`reassign`), and the
late agent's miss is recorded for reputation.
"""
import sys
import time

sys.stdin.read()
# Long past any ETA the tests and the demo use, but bounded: a brain orphaned by a killed agent
# does not linger. Then it gives up without a result.
time.sleep(120)
sys.exit(1)
