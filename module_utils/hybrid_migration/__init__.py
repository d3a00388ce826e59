"""Shared engine of the hybrid migration runbook.

Plain, typed Python with no Ansible imports in its logic: the modules in
``library/`` only translate arguments and results, so everything here can be
tested and reused without ansible-playbook.
"""
