// exodf macro set for Fiji: detect exocytosis events with ExoDeepFinder (exodf) in the current movie.
// Installed by `exodf fiji install --fiji Fiji.app` (Plugins > Macros > exodf, and a toolbar toolset).

macro "exodf Detect Action Tool - C037o11ddC0a0o44ggC000T4f09e" {
	exodfDetectCurrent();
}

macro "exodf: Detect exocytosis events in the current movie" {
	exodfDetectCurrent();
}

macro "exodf: Open an event table and draw it" {
	if (nImages == 0) exit("exodf: open the movie first");
	path = File.openDialog("exodf or ImageJ event table (.csv)");
	getPixelSize(unit, pw, ph);
	// the table does not say its unit (exodf writes pixels unless detect had --pixel-size): ask
	Dialog.create("exodf: unit of the event table");
	Dialog.addMessage("exodf's tables are in pixels, unless exodf detect was given --pixel-size.\n"
	                  + "This image: " + pw + " " + unit + " per pixel.");
	Dialog.addNumber("Size of a pixel in the table's X/Y unit (1: pixels)", 1);
	Dialog.show();
	scale = Dialog.getNumber();
	exodfAskToReplaceResults();
	exodfLoadResults(path);
	n = exodfDrawOverlay(scale);
	showStatus("exodf: " + nResults + " events, " + n + " circles");
}

macro "exodf: Save the overlay as a ROI set" {
	if (Overlay.size == 0) exit("exodf: the current image has no overlay; detect or open events first");
	if (roiManager("count") > 0)  // (the overlay goes through the ROI Manager, which it would replace)
		exit("exodf: the ROI Manager holds " + roiManager("count") + " ROIs; save or clear them first");
	path = File.saveDialog("ROI set (.zip)");
	if (path == "") exit();  // cancelled
	if (!endsWith(toLowerCase(path), ".zip")) path = path + ".zip";  // (ImageJ saves a ROI set as .zip only)
	run("To ROI Manager");
	roiManager("Save", path);
	run("From ROI Manager");
	roiManager("reset");
	if (!File.exists(path)) exit("exodf: the ROI set could not be saved to " + path);
	showStatus("exodf: ROI set saved to " + path);
}

function exodfDetectCurrent() {
	if (nImages == 0) exit("exodf: open a movie first (a 2D+time stack)");
	exodfAskToReplaceResults();
	id = getImageID();
	title = getTitle();
	own = getInfo("image.directory") + getInfo("image.filename");
	movie = exodfSaveCurrent();
	copied = false;
	if (movie != own) copied = true;  // an unsaved or changed image went through a temporary copy
	events = exodfEventsPath(movie);
	showStatus("exodf: detecting events in " + title + " ...");
	out = exodfDetect(movie, events, "");
	if (copied) ok = File.delete(movie);  // (the copy is not needed any more: no pile of movies in temp)
	n = exodfLoadResults(events);
	selectImage(id);
	c = exodfDrawOverlay(1);
	if (String.trim(out) != "") print(out);
	print("exodf: " + n + " events in " + title + " -> " + events);
	print("  (X/Y in pixels, 0 = the centre of the first pixel; Slice 1-based: the frame of the event; to keep "
	      + "the table, File > Save As in the Results window)");
	showStatus("exodf: " + n + " events (" + events + ")");
}

// Where Detect writes the event table: ImageJ's temporary folder (never over a table of the user's, and
// writable where the movie's folder may not be); the Log names it, and File > Save As keeps it.
function exodfEventsPath(movie) {
	return getDirectory("temp") + File.getNameWithoutExtension(movie) + "_exodf_events.csv";
}

// Filling the Results table replaces what it holds: ask first when it holds the user's measurements.
function exodfAskToReplaceResults() {
	h = String.getResultsHeadings;  // exodf's own events (a Detect before) go without asking
	if (indexOf(h, "Score") >= 0 && indexOf(h, "Size") >= 0 && indexOf(h, "Slice") >= 0) return;
	if (nResults > 0 && !is("Batch Mode"))
		showMessageWithCancel("exodf", "The event table replaces the " + nResults + " rows of the Results "
		                      + "table.\nSave them first (File > Save As in the Results window) or Cancel.");
}
