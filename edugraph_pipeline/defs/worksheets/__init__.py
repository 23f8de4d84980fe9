"""The `worksheets` asset group: worksheet_dataset, its content source and content_release_sensor."""
