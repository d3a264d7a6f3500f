// exodf batch macro: run headless as
//   ImageJ -batch exodf_batch.ijm "movie=PATH\nevents=PATH[\nresults=PATH][\noverlay=PATH][\noption=ARG...]"
// (one key=value per line: real line breaks, or the two characters \n as a shell passes them). Opens the
// movie, runs `exodf detect` through exec(), loads the event table into the Results table, draws the
// overlay; saves the Results table (results=) and the movie with its overlay as TIFF (overlay=) when asked.
// Ends with the line "exodf_batch: done, ..." (`exodf fiji macro` fails without it).

argument = getArgument();
// (a literal \n only before a key: C:\new\movie.tif stays whole)
if (indexOf(argument, "\n") < 0) argument = replace(argument, "\\\\n(?=(movie|events|results|overlay|option)=)", "\n");
args = split(argument, "\n");
movie = ""; events = ""; results = ""; overlay = ""; options = "";
for (i = 0; i < args.length; i++) {
	k = indexOf(args[i], "=");
	if (k < 0) continue;
	key = substring(args[i], 0, k);
	val = substring(args[i], k + 1);
	if (key == "movie") movie = val;
	else if (key == "events") events = val;
	else if (key == "results") results = val;
	else if (key == "overlay") overlay = val;
	else if (key == "option") { if (options != "") options = options + "\n"; options = options + val; }
}
if (movie == "" || events == "") exit("exodf_batch: give movie=PATH and events=PATH, one per line");
// earlier outputs go first: a failed run must not leave them looking like this run's
if (results != "" && File.exists(results)) ok = File.delete(results);
if (overlay != "" && File.exists(overlay)) ok = File.delete(overlay);
setBatchMode(true);
open(movie);
out = exodfDetect(movie, events, options);
n = exodfLoadResults(events);
c = exodfDrawOverlay(exodfTableScale(options));  // --pixel-size among the options: a calibrated table
if (results != "") exodfSaveResults(results);
if (overlay != "") saveAs("Tiff", overlay);
print("exodf_batch: done, " + n + " events, " + c + " overlay circles");
