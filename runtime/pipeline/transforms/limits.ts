import { OutpostError } from '../../errors.js';

/**
 * The bound on any list a pipeline carries from one step to the next (boxes, crops, detections): per request, per
 * list. 1,000 text lines or objects in one image is far past any page or frame we serve; a list beyond it is a
 * typed PIPELINE_LIMIT_EXCEEDED naming the step, never an allocation of 10,000 crops (docs/pipelines.md, "Limits").
 */
export const MAX_LIST_ITEMS = 1000; // items per list per request

export function checkListLength(op: string, what: string, count: number, limit: number = MAX_LIST_ITEMS): void {
  if (count > limit) {
    throw new OutpostError(
      'PIPELINE_LIMIT_EXCEEDED',
      `${op}: ${count} ${what} exceed the limit of ${limit} per request`,
      {
        details: { op, count, limit },
      },
    );
  }
}
