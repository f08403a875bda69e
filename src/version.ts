/** pyferry's version, in one place (keep in step with package.json). */
export const VERSION = "0.1.0";
