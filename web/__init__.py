"""The browser page: static HTML, CSS and JavaScript modules, served as package data so the
server finds them the same way in an editable install and in a built wheel."""
