// Starts GraphiQL on Segue's page (src/http/graphiql/page.ts). The page's Content-Security-Policy
// allows no inline script, so what @graphql-yoga/render-graphiql writes inline lives here, served
// from Segue's origin. Runs before GraphiQL's bundle (both are deferred, in document order).
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('graphiql-config').textContent);
  var options = config.options;

  // GraphiQL's Monaco editor writes <style> elements at run time and has no hook for a nonce.
  // The policy allows styles from Segue's origin and those carrying this page's nonce, so every
  // <style> created here gets it. Only Segue's own scripts run on the page (script-src 'self').
  var nonce = document.querySelector('link[rel="stylesheet"]').nonce;
  var createElement = Document.prototype.createElement;
  Document.prototype.createElement = function (tagName) {
    var element = createElement.apply(this, arguments);
    if (String(tagName).toLowerCase() === 'style') element.nonce = nonce;
    return element;
  };
  // react-remove-scroll (GraphiQL's dialogs) reads the nonce from here.
  window.__webpack_nonce__ = nonce;

  // The editor's language workers, as files of Segue's origin (worker-src 'self'), not blob: URLs.
  window.MonacoEnvironment = {
    globalAPI: false,
    getWorkerUrl: function (_moduleId, label) {
      return config.workers[label] || config.workers.editorWorkerService;
    },
  };

  // GraphiQL keeps tabs, history and headers (an API key) in this browser tab's sessionStorage,
  // as the console keeps its key: a reload keeps them, closing the tab forgets them, and a key is
  // never written to localStorage.
  var session = window.sessionStorage;
  var ownKeys = function () {
    return Object.keys(session).filter(function (key) {
      return key.indexOf('graphiql:') === 0;
    });
  };
  options.storage = {
    getItem: function (key) {
      return session.getItem(key);
    },
    setItem: function (key, value) {
      session.setItem(key, value);
    },
    removeItem: function (key) {
      session.removeItem(key);
    },
    get length() {
      return ownKeys().length;
    },
    clear: function () {
      ownKeys().forEach(function (key) {
        session.removeItem(key);
      });
    },
  };

  // GraphiQL reads the schema once, as the page opens; where introspection needs a key, that is
  // before one is in the headers. Read it again when a tab's headers carry a new Authorization
  // (not on every tab switch, and not for a tab without a key, which would lose the docs).
  var schemaAuthorization = null;
  var refetch = null;
  options.onEditHeaders = function (text) {
    clearTimeout(refetch);
    refetch = setTimeout(function () {
      var headers;
      try {
        headers = JSON.parse(text || '{}');
      } catch (_error) {
        return; // still being typed
      }
      var authorization = null;
      Object.keys(headers || {}).forEach(function (name) {
        if (name.toLowerCase() === 'authorization') authorization = String(headers[name]);
      });
      if (!authorization || authorization === schemaAuthorization) return;
      schemaAuthorization = authorization;
      var button = document.querySelector('button[aria-label^="Re-fetch GraphQL schema"]');
      if (button) button.click();
    }, 400);
  };

  document.addEventListener('DOMContentLoaded', function () {
    // The tab bar measures its tabs on first render (to animate reordering); measured before the
    // fonts are in, every tab but the last keeps a stale offset and jumps away from the pointer
    // when pressed, so a click on it does nothing. Render once the fonts are loaded.
    var fonts = ['400 1em Roboto', '500 1em Roboto', '400 1em "Fira Code"'].map(function (font) {
      return document.fonts.load(font);
    });
    Promise.all(fonts).finally(function () {
      window.YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), options);
    });
  });
})();
