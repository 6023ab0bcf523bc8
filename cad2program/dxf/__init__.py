"""DXF in: CAD archives turned into dataset folders (shapes, dimensions, drawings, the importer)."""
