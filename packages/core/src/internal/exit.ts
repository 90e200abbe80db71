import { Cause, Effect, type Exit } from "effect"

/*
 * `Effect.onExit`, `Effect.onInterrupt` and `Effect.ensuring` for what runs once per request,
 * without the options object that Effect's versions make per call.
 *
 * V8 tracks where each object literal is made and, once most of a literal's objects outlive a
 * scavenge, allocates its objects in the old generation from then on. In most processes here a
 * literal behind Effect's `onExit` got there: taking `Effect.onInterrupt` off the drop's path
 * (the wrapper `Effect.async` puts around a register that returns a canceler) is what stopped it.
 * One made per request is dead at once, but until the next full collection it holds what its
 * closures hold (the request's whole state) through every scavenge: on a loop of trivial drops,
 * 1.8 KB promoted and 7-8 us of scavenge pauses per drop, against 0.09 KB and 0.9 us with these.
 */

/** Runs `cleanup` with the exit of `self`, whatever it is, uninterruptibly. */
export const onExit = <A, E, R, R2>(
  self: Effect.Effect<A, E, R>,
  cleanup: (exit: Exit.Exit<A, E>) => Effect.Effect<void, never, R2>
): Effect.Effect<A, E, R | R2> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.exit(restore(self)), (exit) => Effect.zipRight(cleanup(exit), exit))
  )

/** Runs `finalizer` once `self` is done, whatever its exit. */
export const ensuring = <A, E, R, R2>(
  self: Effect.Effect<A, E, R>,
  finalizer: Effect.Effect<void, never, R2>
): Effect.Effect<A, E, R | R2> => onExit(self, () => finalizer)

/** Runs `cleanup` when `self` is interrupted (its cause an interruption only), uninterruptibly. */
export const onInterrupt = <A, E, R, R2>(
  self: Effect.Effect<A, E, R>,
  cleanup: () => Effect.Effect<void, never, R2>
): Effect.Effect<A, E, R | R2> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.catchAllCause(restore(self), (cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.zipRight(cleanup(), Effect.failCause(cause))
        : Effect.failCause(cause)
    )
  )
