// One clip at a time: starting a clip pauses every other one.
document.addEventListener("play", (e) => {
  for (const a of document.querySelectorAll("audio")) if (a !== e.target) a.pause();
}, true);
