/**
 * Public names for the tfjs tensor types that moge's API takes and returns.
 *
 * @module
 */

import type { tf } from "./deps.ts";

/** A tfjs tensor of any rank (`tf.Tensor`). */
export type Tensor = tf.Tensor;
/** A rank-1 tfjs tensor (`tf.Tensor1D`). */
export type Tensor1D = tf.Tensor1D;
/** A rank-2 tfjs tensor (`tf.Tensor2D`). */
export type Tensor2D = tf.Tensor2D;
/** A trainable tfjs variable (`tf.Variable`). */
export type Variable = tf.Variable;
