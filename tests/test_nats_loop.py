"""`cep.jetstream.client.EventLoopThread.post`: calls handed from a worker's thread to the NATS
event-loop thread run in the order they were posted, and a burst of them wakes the loop once
(each wake-up costs the posting thread a wait for the GIL)."""
import threading

from cep.jetstream.client import EventLoopThread


def test_posts_run_in_order_and_a_burst_wakes_the_loop_once():
    thread = EventLoopThread()
    wakes = []
    schedule = thread.loop.call_soon_threadsafe

    def counted(callback, *args):
        wakes.append(callback)
        return schedule(callback, *args)

    thread.loop.call_soon_threadsafe = counted
    busy, release, done = threading.Event(), threading.Event(), threading.Event()
    schedule(lambda: (busy.set(), release.wait(5)))  # the loop is busy while the burst is posted
    assert busy.wait(5)
    ran = []
    for number in range(1000):
        thread.post(ran.append, number)
    thread.post(done.set)
    release.set()
    assert done.wait(5)
    assert ran == list(range(1000))
    assert len(wakes) == 1, len(wakes)
    done.clear()
    thread.post(lambda: (ran.append("after"), done.set()))  # the loop is idle again: a post wakes it
    assert done.wait(5) and ran[-1] == "after" and len(wakes) == 2
    schedule(thread.loop.stop)
