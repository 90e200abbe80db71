/**
 * The value codec: MessagePack with the extension types of PROTOCOL.md.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as internal from "./internal/codec.js"
import { EncodeError, ProtocolError } from "./PythonError.js"

/**
 * Encodes a value as Python will receive it; fails with the path of what cannot cross.
 *
 * @since 0.1.0
 * @category codec
 */
export const encode = (value: unknown): Effect.Effect<Uint8Array, EncodeError> =>
  Effect.try({
    try: () => internal.encode(value).slice(),
    catch: (e) =>
      e instanceof internal.EncodeFailure
        ? new EncodeError({ side: "node", path: e.path, detail: e.detail })
        : new EncodeError({ side: "node", path: [], detail: String(e) })
  })

/**
 * Decodes one value.
 *
 * @since 0.1.0
 * @category codec
 */
export const decode = (bytes: Uint8Array): Effect.Effect<unknown, ProtocolError> =>
  Effect.try({
    try: () => internal.decode(bytes),
    catch: (e) => new ProtocolError({ detail: e instanceof internal.DecodeFailure ? e.detail : String(e) })
  })
