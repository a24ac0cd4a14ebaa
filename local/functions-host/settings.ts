/** App settings as bindings see them: `%Name%` in a binding property is the setting's value. */

export class MissingSettingError extends Error {
  override name = 'MissingSettingError';
}

export function resolveSettingExpression(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return text.replace(/%([^%]+)%/g, (_, name: string) => {
    const value = env[name];
    if (value === undefined) throw new MissingSettingError(`app setting "${name}" (used as %${name}%) is not set`);
    return value;
  });
}
