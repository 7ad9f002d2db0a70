import Glibc

// Placeholder until the BlockWorker issue lands: the executable exists so volt-vmm's
// build and spawn paths are wired, but it serves no device yet.
fputs("volt-blk-worker: not implemented yet (see the BlockWorker issue)\n", stderr)
exit(2)
