#!/usr/bin/env python3
"""An agent brain that wins work and never delivers (it hangs until killed).

Used to show take-over: once the ETA the agent signed in its bid has passed, the node (as the
bounty's evaluator) hands the job to the next-ranked bidder on-chain (`reassign`), and the
late agent's miss is recorded for reputation.
"""
import sys
import time

sys.stdin.read()
time.sleep(3600)
