/**
 * The wire protocol between Node and the Python worker (see PROTOCOL.md).
 *
 * @since 0.1.0
 */
import * as internal from "./internal/protocol.js"

/**
 * The protocol version this side speaks; the worker's handshake must match it.
 *
 * @since 0.1.0
 * @category constants
 */
export const VERSION: number = internal.PROTOCOL_VERSION

/**
 * @since 0.1.0
 * @category models
 */
export type WorkerMessage = internal.WorkerMessage
