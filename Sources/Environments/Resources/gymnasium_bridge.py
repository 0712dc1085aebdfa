# The child process of the Gymnasium bridge (Sources/Environments/GymnasiumBridge.swift embeds this file at build
# time and runs it with `python -u -c`): the protocol on its stdin/stdout is in docs/gymnasium-bridge.md.
import json, os, struct, sys, traceback

HELLO, RESET, STEP, CLOSE, ERROR = 0x48, 0x52, 0x53, 0x43, 0x45
VERSION = 1

# The protocol owns fd 0 and fd 1; whatever the environments print goes to stderr instead.
requests = os.fdopen(0, "rb", buffering=0)
replies = os.dup(1)
os.dup2(2, 1)


def write_all(data):
    view = memoryview(data)
    while view:
        view = view[os.write(replies, view):]


def send(kind, body=b""):
    write_all(struct.pack("<II", kind, len(body)) + body)


def read_into(buffer):
    view = memoryview(buffer)
    while view:
        count = requests.readinto(view)
        if not count:
            sys.exit(0)  # the parent closed the channel
        view = view[count:]


def fail(message):
    send(ERROR, message.encode("utf-8", "replace"))
    sys.exit(1)


def main():
    env_id, kwargs, count, seed = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    try:
        import numpy as np
        import gymnasium
    except ImportError as error:
        fail(f"{sys.executable} cannot import gymnasium ({error}); install it for that Python (pip install gymnasium)")
    try:
        envs = [gymnasium.make(env_id, **kwargs) for _ in range(count)]
    except gymnasium.error.UnregisteredEnv as error:
        fail(f"unknown Gymnasium environment id {env_id!r}: {error}")
    except (gymnasium.error.DependencyNotInstalled, ImportError) as error:
        fail(f"making {env_id!r} needs a Python package that {sys.executable} cannot import: {error}")
    except TypeError as error:
        fail(f"gymnasium.make({env_id!r}, **{sys.argv[2]}) rejected its arguments: {error}")
    observation_space, action_space = envs[0].observation_space, envs[0].action_space
    for role, space in (("observation", observation_space), ("action", action_space)):
        if not isinstance(space, gymnasium.spaces.Box):
            fail(f"{env_id!r} has the {role} space {space}; the bridge supports only Box spaces "
                 "(register a wrapped environment, e.g. with FlattenObservation, to bridge it)")
    observation_dim, action_dim = observation_space.low.size, action_space.low.size
    limit = envs[0].spec.max_episode_steps if envs[0].spec is not None else None
    with np.errstate(over="ignore"):
        bounds = np.concatenate([observation_space.low.ravel(), observation_space.high.ravel(),
                                 action_space.low.ravel(), action_space.high.ravel()]).astype("<f4")
    send(HELLO, struct.pack("<5I", VERSION, count, observation_dim, action_dim, limit or 0) + bounds.tobytes())

    # Requests and replies live in buffers made once; numpy views shaped like the spaces read and write them in place.
    header = bytearray(8)
    request = bytearray(count * action_dim * 4 + count)
    actions = np.frombuffer(request, "<f4", count * action_dim).reshape((count,) + action_space.shape)
    active = np.frombuffer(request, np.uint8, count, count * action_dim * 4)
    reply = bytearray(8 + count * observation_dim * 4 + count * 5)
    struct.pack_into("<II", reply, 0, STEP, len(reply) - 8)
    observations = np.frombuffer(reply, "<f4", count * observation_dim, 8).reshape((count,) + observation_space.shape)
    rewards = np.frombuffer(reply, "<f4", count, 8 + count * observation_dim * 4)
    flags = np.frombuffer(reply, np.uint8, count, 8 + count * observation_dim * 4 + count * 4)
    reset_request = bytearray(4)
    reset_reply = bytearray(8 + observation_dim * 4)
    struct.pack_into("<II", reset_reply, 0, RESET, observation_dim * 4)
    reset_observation = np.frombuffer(reset_reply, "<f4", observation_dim, 8).reshape(observation_space.shape)
    seeded = [False] * count

    while True:
        read_into(header)
        kind, length = struct.unpack("<II", header)
        if kind == STEP and length == len(request):
            read_into(request)
            for index in np.flatnonzero(active).tolist():
                # astype copies: an environment may keep the action after the buffer has been overwritten.
                observation, reward, terminated, truncated, _ = envs[index].step(actions[index].astype(action_space.dtype))
                observations[index] = observation
                rewards[index] = reward
                flags[index] = bool(terminated) | bool(truncated) << 1
            write_all(reply)
        elif kind == RESET and length == 4:
            read_into(reset_request)
            (index,) = struct.unpack("<I", reset_request)
            if index >= count:
                fail(f"protocol error: reset of instance {index} in a batch of {count}")
            observation, _ = envs[index].reset(seed=None if seeded[index] else seed + index)
            seeded[index] = True
            reset_observation[...] = observation
            write_all(reset_reply)
        elif kind == CLOSE and length == 0:
            for env in envs:
                env.close()
            return
        else:
            fail(f"protocol error: request kind {kind:#x} with {length} bytes")


try:
    main()
except SystemExit:
    raise
except BaseException:
    fail("the environment raised an exception:\n" + traceback.format_exc())
