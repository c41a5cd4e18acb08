// @ts-check
// The one DOM helper every module shares.

/**
 * The element with this id in join.html. Typed loosely (`any`): the ids are join.html's, and
 * each caller knows which kind of element it asked for (input, dialog, template...).
 * @param {string} id
 * @returns {any}
 */
export const $ = (id) => document.getElementById(id);
