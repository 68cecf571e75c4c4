#!/bin/sh
# Gives an ordinary user the cgroups a collective node puts its jobs in,
# for hosts where systemd's `Delegate=` (contrib/collective-node.service)
# is not used. Run as root; prints the directories to list under
# `sandbox.cgroups` in node.yaml, one per line.
#
#   scripts/delegate-cgroup.sh USER [NAME]
#
# cgroup v2 (memory and pids controllers available): /sys/fs/cgroup/NAME,
# with both controllers enabled for its children.
# cgroup v1: /sys/fs/cgroup/memory/NAME and /sys/fs/cgroup/pids/NAME.
set -eu
user=${1:?usage: delegate-cgroup.sh USER [NAME]}
name=${2:-collective-$user}
root=/sys/fs/cgroup
id -u "$user" >/dev/null 2>&1 || { echo "delegate-cgroup: no user $user" >&2; exit 2; }
if [ -f "$root/cgroup.controllers" ] \
    && grep -qw memory "$root/cgroup.controllers" \
    && grep -qw pids "$root/cgroup.controllers"; then
    dir=$root/$name
    mkdir -p "$dir"
    echo "+memory +pids" > "$root/cgroup.subtree_control"
    chown "$user:" "$dir" "$dir/cgroup.procs" "$dir/cgroup.subtree_control" "$dir/cgroup.threads"
    echo "$dir"
elif [ -d "$root/memory" ] && [ -d "$root/pids" ]; then
    for c in memory pids; do
        dir=$root/$c/$name
        mkdir -p "$dir"
        chown -R "$user:" "$dir"
        echo "$dir"
    done
else
    echo "delegate-cgroup: this host has neither cgroup v2 with memory and pids nor cgroup v1 memory and pids hierarchies" >&2
    exit 1
fi
