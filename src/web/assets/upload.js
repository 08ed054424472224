// Uploads on a folder page, with JavaScript on: a progress bar, and files dropped on the
// page. Without it the form posts as it is (the page works the same, without progress).
// Served from the binary; the CSP allows only scripts of this origin, none inline.
"use strict";
(function () {
  var form = document.getElementById("upload");
  if (!form || !window.FormData || !window.XMLHttpRequest) {
    return;
  }
  var input = document.getElementById("files");
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function send() {
    if (!input.files || input.files.length === 0) {
      say("Choose or drop files first.");
      return;
    }
    var data = new FormData(form); // the token first: it precedes the files in the form
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    bar.value = 0;
    say("Uploading " + input.files.length + " file(s)…");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        bar.value = Math.floor((e.loaded * 100) / e.total);
      }
    };
    xhr.onload = function () {
      if (xhr.status >= 200 && xhr.status < 300) {
        // Followed the redirect to the folder: show it, with the new files.
        window.location.assign(xhr.responseURL || window.location.href);
        return;
      }
      var title = new DOMParser().parseFromString(xhr.responseText, "text/html").querySelector("h1");
      bar.hidden = true;
      say("Upload refused: " + (title ? title.textContent : "error " + xhr.status));
    };
    xhr.onerror = function () {
      bar.hidden = true;
      say("The upload was cut off. Try again.");
    };
    xhr.send(data);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    send();
  });

  var zone = document.body;
  zone.addEventListener("dragover", function (e) {
    e.preventDefault();
    zone.classList.add("dropping");
  });
  zone.addEventListener("dragleave", function (e) {
    if (e.target === zone) {
      zone.classList.remove("dropping");
    }
  });
  zone.addEventListener("drop", function (e) {
    e.preventDefault();
    zone.classList.remove("dropping");
    if (e.dataTransfer && e.dataTransfer.files.length > 0) {
      input.files = e.dataTransfer.files;
      send();
    }
  });
})();
