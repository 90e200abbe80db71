/**
 * @since 0.1.0
 */
export * as NodePython from "./NodePython.js"
