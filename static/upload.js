// pooltriage upload portal: drag and drop or file picker -> resumable chunked upload with a
// progress bar, then the dump's page. Plain JavaScript, no framework, no build step.
//
// Contract with the page (templates/upload.html): #upload-form, #drop-zone, #file-input, #system-input,
// #progress (<progress>), #upload-status, and <meta name="csrf-token"> (the session's CSRF
// token, sent as X-CSRF-Token). Without JavaScript the form posts the file as multipart.
//
// Protocol (docs/api.md, "Resumable upload"): POST /api/v1/uploads {filename, size, system?} -> {id,
// chunk_size}; PUT /api/v1/uploads/{id} with Upload-Offset and the next chunk -> {offset} or, on
// the last one, {complete: true, page_url}. On a network error or a 5xx the script waits (1 s,
// 2 s, 4 s ... 30 s), asks GET /api/v1/uploads/{id} where to resume, and goes on from there; the
// upload id is kept in localStorage, so reloading the page and choosing the same file resumes too.
(function () {
  "use strict";

  var MAX_RETRIES = 60; // with the 30 s cap: about half an hour of trying
  var form = document.getElementById("upload-form");
  var zone = document.getElementById("drop-zone");
  var input = document.getElementById("file-input");
  var bar = document.getElementById("progress");
  var statusLine = document.getElementById("upload-status");
  if (!form || !window.fetch || !window.XMLHttpRequest || !window.Blob || !Blob.prototype.slice) {
    return; // the plain form keeps working
  }
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") || "" : "";
  var busy = false;
  var cancelButton = document.getElementById("upload-cancel");
  var unfinished = document.getElementById("unfinished-upload");
  var current = null; // the XMLHttpRequest of the chunk in flight, for cancel
  var cancelled = false;

  function say(text, isError) {
    if (statusLine) {
      statusLine.textContent = text;
      statusLine.classList.toggle("error", !!isError);
    }
  }

  function showProgress(done, total) {
    if (!bar) return;
    bar.hidden = false;
    bar.max = total > 0 ? total : 1;
    bar.value = Math.min(done, bar.max);
  }

  function resetProgress() {
    if (!bar) return;
    bar.value = 0;
    bar.hidden = true;
  }

  // "12.3 of 100.0 MiB (12%) · 45.6 MiB/s · about 2 min left", from the bytes this page has
  // sent since it started (a resumed upload's earlier bytes do not inflate the speed).
  function progressText(done, total, sentHere, startedAt) {
    var pct = total > 0 ? Math.floor((done * 100) / total) : 100;
    var text = mib(done) + " of " + mib(total) + " (" + pct + "%)";
    var secs = (Date.now() - startedAt) / 1000;
    if (secs >= 1 && sentHere > 0) {
      var rate = sentHere / secs;
      text += " · " + mib(rate) + "/s";
      var left = (total - done) / rate;
      if (left >= 1) text += " · about " + duration(left) + " left";
    }
    return text;
  }

  function duration(secs) {
    if (secs < 90) return Math.round(secs) + " s";
    if (secs < 5400) return Math.round(secs / 60) + " min";
    return (secs / 3600).toFixed(1) + " h";
  }

  function mib(n) {
    return (n / 1048576).toFixed(1) + " MiB";
  }

  function headers(extra) {
    var h = { "X-CSRF-Token": csrf, Accept: "application/json" };
    for (var k in extra) h[k] = extra[k];
    return h;
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // An error the server explained (4xx): retrying the same request will not help.
  function Refused(status, body) {
    this.status = status;
    this.body = body || {};
    this.message = (body && body.error) || "the server refused the upload (HTTP " + status + ")";
  }

  function storageKey(file) {
    return "pooltriage-upload:" + file.name + ":" + file.size + ":" + (file.lastModified || 0);
  }

  function remember(file, id) {
    try {
      if (id) localStorage.setItem(storageKey(file), id);
      else localStorage.removeItem(storageKey(file));
    } catch (e) { /* private mode: resume within the page only */ }
  }

  function remembered(file) {
    try { return localStorage.getItem(storageKey(file)); } catch (e) { return null; }
  }

  function json(resp) {
    return resp.text().then(function (t) {
      var body = {};
      try { body = t ? JSON.parse(t) : {}; } catch (e) { body = { error: t }; }
      return { status: resp.status, body: body };
    });
  }

  function api(method, url, body) {
    var init = { method: method, credentials: "same-origin", headers: headers({}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(json);
  }

  // Starts a new upload, or finds the one this browser started for the same file.
  function begin(file) {
    var old = remembered(file);
    var resume = old
      ? api("GET", "/api/v1/uploads/" + encodeURIComponent(old)).then(function (r) {
          if (r.status === 200 && r.body.state === "receiving" && r.body.size === file.size) {
            return r.body;
          }
          return null;
        }, function () { return null; })
      : Promise.resolve(null);
    return resume.then(function (found) {
      if (found) return found;
      var create = { filename: file.name, size: file.size };
      var sys = document.getElementById("system-input");
      if (sys && sys.value.trim() !== "") create.system = sys.value.trim();
      return api("POST", "/api/v1/uploads", create).then(function (r) {
        if (r.status !== 201) throw new Refused(r.status, r.body);
        remember(file, r.body.id);
        return r.body;
      });
    });
  }

  // PUTs one chunk with XMLHttpRequest (fetch reports no upload progress). Resolves with
  // {status, body}; rejects on a network error.
  function putChunk(url, offset, blob, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", url, true);
      xhr.withCredentials = true;
      var h = headers({ "Upload-Offset": String(offset), "Content-Type": "application/octet-stream" });
      for (var k in h) xhr.setRequestHeader(k, h[k]);
      current = xhr;
      xhr.upload.onprogress = function (e) { onProgress(e.loaded); };
      xhr.onload = function () {
        current = null;
        var body = {};
        try { body = xhr.responseText ? JSON.parse(xhr.responseText) : {}; } catch (e) { body = {}; }
        resolve({ status: xhr.status, body: body });
      };
      xhr.onerror = function () { reject(new Error("network error")); };
      xhr.ontimeout = function () { reject(new Error("timed out")); };
      xhr.onabort = function () { reject(new Error("aborted")); };
      xhr.send(blob);
    });
  }

  function run(file) {
    var total = file.size;
    var up = null;
    var offset = 0;
    var chunk = 8 * 1048576;
    var failures = 0;
    var startedAt = Date.now();
    var firstOffset = null;

    function report(done) {
      if (firstOffset === null) firstOffset = done;
      showProgress(done, total);
      say("Uploading " + file.name + ": " + progressText(done, total, done - firstOffset, startedAt));
    }

    function retryLater(why) {
      if (cancelled) throw new Error("cancelled");
      failures += 1;
      if (failures > MAX_RETRIES) throw new Error("giving up after " + MAX_RETRIES + " attempts: " + why);
      var wait = Math.min(30000, 1000 * Math.pow(2, Math.min(failures - 1, 5)));
      say("Connection problem (" + why + "); resuming in " + Math.round(wait / 1000) + " s…");
      return sleep(wait).then(function () {
        return api("GET", up.upload_url).then(function (r) {
          if (r.status === 200) {
            if (r.body.complete && r.body.page_url) return r.body;
            offset = r.body.offset;
            return null;
          }
          if (r.status >= 500) return retryLater("HTTP " + r.status);
          throw new Refused(r.status, r.body);
        }, function (e) { return retryLater(e.message); });
      });
    }

    function step() {
      var end = Math.min(total, offset + chunk);
      var from = offset;
      if (cancelled) throw new Error("cancelled");
      report(from);
      return putChunk(up.upload_url, from, file.slice(from, end), function (loaded) {
        report(from + loaded);
      }).then(function (r) {
        if (r.status === 200) {
          failures = 0;
          offset = r.body.offset;
          report(offset);
          if (r.body.complete) return r.body;
          return step();
        }
        if (r.status === 409 && typeof r.body.offset === "number" && r.body.code !== "upload_failed") {
          // Another offset on the server (an earlier attempt got further), or busy: go on from it.
          if (r.body.complete) return api("GET", up.upload_url).then(function (g) { return g.body; });
          offset = r.body.offset;
          if (r.body.code === "upload_busy") return retryLater("upload busy").then(after);
          return step();
        }
        if (r.status >= 500 || r.status === 0) return retryLater("HTTP " + r.status).then(after);
        // Every upload slot busy (the server's, or this tenant's share): the chunk waits its turn.
        if (r.status === 429 && r.body.code === "too_many_uploads") return retryLater("server busy").then(after);
        throw new Refused(r.status, r.body);
      }, function (e) {
        return retryLater(e.message).then(after);
      });
    }

    function after(done) {
      return done ? done : step();
    }

    showProgress(0, total);
    say("Starting the upload of " + file.name + " (" + mib(total) + ")…");
    return begin(file).then(function (u) {
      up = u;
      offset = u.offset || 0;
      chunk = u.chunk_size || chunk;
      return step();
    }).then(function (done) {
      remember(file, null);
      showProgress(total, total);
      say("Uploaded. Opening the report…");
      busy = false; // no leave-page question on the way to the report
      if (cancelButton) cancelButton.hidden = true;
      window.location.assign(done.page_url);
    });
  }

  function start(file) {
    if (busy || !file) return;
    busy = true;
    form.classList.add("uploading");
    cancelled = false;
    if (cancelButton) cancelButton.hidden = false;
    if (unfinished) unfinished.hidden = true;
    run(file).catch(function (e) {
      busy = false;
      form.classList.remove("uploading");
      if (cancelButton) cancelButton.hidden = true;
      resetProgress();
      if (cancelled) {
        remember(file, null);
        say("Upload cancelled. Nothing was analysed; the server deletes the partial upload.");
        return;
      }
      if (e instanceof Refused && e.status !== 409) remember(file, null);
      say("Upload failed: " + e.message, true);
    });
  }

  if (cancelButton) {
    cancelButton.addEventListener("click", function () {
      cancelled = true;
      if (current) current.abort();
    });
  }

  // Leaving the page stops the upload: the browser asks first. (It resumes from this page if
  // the same file is chosen again.)
  window.addEventListener("beforeunload", function (e) {
    if (!busy) return;
    e.preventDefault();
    e.returnValue = "";
  });

  // An upload this browser started and did not finish (a reload, a closed tab): say so, and
  // how to resume it. The file itself cannot be reopened by a page; the person chooses it.
  function showUnfinished() {
    if (!unfinished) return;
    var names = [];
    try {
      for (var i = 0; i < localStorage.length; i++) {
        var k = localStorage.key(i);
        if (k && k.indexOf("pooltriage-upload:") === 0) {
          var parts = k.split(":");
          var size = Number(parts[parts.length - 2]);
          names.push(parts.slice(1, parts.length - 2).join(":") + " (" + mib(size) + ")");
        }
      }
    } catch (e) { return; }
    if (names.length === 0) return;
    unfinished.textContent = "Unfinished upload: " + names.join(", ") +
      ". Choose or drop the same file again to go on where it stopped.";
    unfinished.hidden = false;
  }
  showUnfinished();

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (input && input.files && input.files.length > 0) start(input.files[0]);
    else say("Choose a dump file first.", true);
  });

  if (zone) {
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (e) {
        e.preventDefault();
        if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
        zone.classList.add("dragover");
      });
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("dragover"); });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      zone.classList.remove("dragover");
      var files = e.dataTransfer && e.dataTransfer.files;
      if (files && files.length > 0) start(files[0]);
    });
  }
  // A file dropped beside the zone must not make the browser navigate away to it.
  window.addEventListener("dragover", function (e) { e.preventDefault(); });
  window.addEventListener("drop", function (e) { e.preventDefault(); });
})();
