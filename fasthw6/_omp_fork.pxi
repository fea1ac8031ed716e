# The forked-child rule of the OpenMP kernels, shared by the conv, nn and vae extensions
# (included by each; it needs PyThread_get_thread_ident, openmp, _os and fasthw6._parallel
# imported by the including module).


# Forked children (os.fork, multiprocessing's "fork" start method).  GNU OpenMP keeps, for each
# thread that has led a parallel region, a pool of worker threads it reuses; a forked child holds
# only the thread that called fork, whose pool still lists workers that do not exist there, so a
# region it leads on more than one thread waits for them forever.  In a forked child that thread
# therefore runs these kernels on one thread (``_omp_threads``); threads the child starts get
# pools of their own and run on every thread.  (``fasthw6._parallel`` documents the whole rule.)
# A module first imported in a forked child takes the forking thread from ``fasthw6._parallel``.
cdef unsigned long _forked_thread = _parallel.forked_thread()


def _after_fork_in_child():
    """Record the calling thread (a forked child's only thread) as one whose OpenMP pool is
    stale."""
    global _forked_thread
    _forked_thread = PyThread_get_thread_ident()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


cdef int _omp_threads() noexcept:
    """Threads for a parallel region led by the calling thread: OpenMP's count, or 1 in the
    thread that forked this process (its pool is stale).  Called with the GIL held."""
    if _forked_thread != 0 and PyThread_get_thread_ident() == _forked_thread:
        return 1
    return openmp.omp_get_max_threads()
