import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

/** Request options that send a patch body as a JSON merge patch (RFC 7386). */
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Request options that send a patch body as a JSON patch (RFC 6902), for test-and-set operations. */
export const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
