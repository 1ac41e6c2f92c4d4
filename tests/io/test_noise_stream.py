"""NoiseStream: messages that came in one read are handed out without another wait."""

import time

import trio
import trio.testing

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.io.noise_stream import NoiseStream


async def linked_pair() -> tuple[NoiseStream, NoiseStream]:
    dialler_keys, answerer_keys = DeviceKeys.generate(), DeviceKeys.generate()
    left, right = trio.testing.memory_stream_pair()
    made: dict[str, NoiseStream] = {}

    async def answer():
        made["answerer"] = await NoiseStream.answer(right, answerer_keys, lambda offer: True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        made["dialler"] = await NoiseStream.dial(left, dialler_keys, purpose="sync",
                                                 responder_static=answerer_keys.public.noise_public, stamp=time.time_ns())
    return made["dialler"], made["answerer"]


async def test_messages_sent_in_one_write_are_read_without_waiting_again():
    dialler, answerer = await linked_pair()
    await dialler.send_many([b"hello", b"x" * 20_000, b"records"])  # one read of the connection
    assert await answerer.receive() == b"hello"
    assert answerer.receive_read() == b"x" * 20_000
    assert answerer.receive_read() == b"records"
    assert answerer.receive_read() is None  # nothing more read: the next needs a wait
    await dialler.send(b"later")
    assert answerer.receive_read() is None  # not read from the connection yet
    assert await answerer.receive() == b"later"


async def test_a_message_only_partly_read_is_finished_by_the_next_receive():
    dialler, answerer = await linked_pair()
    big = bytes(range(256)) * 600  # several frames, more than one read
    await dialler.send_many([b"first", big, b"after"])
    assert await answerer.receive() == b"first"
    assert answerer.receive_read() is None  # the frames read so far do not finish it
    assert await answerer.receive() == big
    assert await answerer.receive() == b"after"
