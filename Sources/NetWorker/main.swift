import Glibc

// Placeholder until the NetWorker issue lands: the executable exists so volt-vmm's
// build and spawn paths are wired, but it serves no device yet.
fputs("volt-net-worker: not implemented yet (see the NetWorker issue)\n", stderr)
exit(2)
