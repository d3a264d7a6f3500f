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
	id = getImageID();
	movie = exodfSaveCurrent();
	base = File.getNameWithoutExtension(movie);
	events = getDirectory("temp") + base + "_exodf_events.csv";
	showStatus("exodf: detecting events in " + getTitle() + " ...");
	out = exodfDetect(movie, events, "");
	n = exodfLoadResults(events);
	selectImage(id);
	c = exodfDrawOverlay(1);
	print("exodf: " + out);
	showStatus("exodf: " + n + " events (" + events + ")");
}
