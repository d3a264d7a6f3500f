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
	scale = 1;
	getPixelSize(unit, pw, ph);
	if (unit != "pixels" && unit != "pixel" && pw != 1) {  // the table does not say its unit: ask
		pixels = "pixels";
		calibrated = unit + " (this image: " + pw + " " + unit + " per pixel)";
		Dialog.create("exodf: unit of the event table");
		Dialog.addChoice("X and Y of the table are in", newArray(pixels, calibrated), pixels);
		Dialog.show();
		if (Dialog.getChoice() == calibrated) scale = pw;
	}
	exodfLoadResults(path);
	n = exodfDrawOverlay(scale);
	showStatus("exodf: " + nResults + " events, " + n + " circles");
}

macro "exodf: Save the overlay as a ROI set" {
	if (Overlay.size == 0) exit("exodf: the current image has no overlay; detect or open events first");
	path = File.saveDialog("ROI set (.zip)");
	run("To ROI Manager");
	roiManager("Save", path);
	run("From ROI Manager");
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
