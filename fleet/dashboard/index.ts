/** The fleet dashboard (`fleet serve`'s web pages): see README.md in this folder. */
export { Dashboard, type DashboardOptions } from './dashboard.js';
export { authorizationOf, checkSameOrigin, isSafeMethod } from './session.js';
export { CSP } from './assets.js';
