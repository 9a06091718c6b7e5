/** Files imported as text (`import page from './page/index.html?raw'`): tsup's raw plug-in and Vite inline them. */
declare module '*?raw' {
  const text: string;
  export default text;
}
