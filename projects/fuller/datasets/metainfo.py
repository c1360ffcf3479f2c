"""Class orders and camera order shared by datasets, configs and metrics
(docs/architecture.md)."""

#: nuScenes detection classes, in the project's order.
CLASS_NAMES = ('car', 'truck', 'construction_vehicle', 'bus', 'trailer',
               'barrier', 'motorcycle', 'bicycle', 'pedestrian',
               'traffic_cone')

#: BEV map classes, in order; ``divider`` = road_divider + lane_divider.
MAP_CLASSES = ('drivable_area', 'ped_crossing', 'walkway', 'stop_line',
               'carpark_area', 'divider')

#: where the ``drivable_area`` labels come from (``drivable_area_source``):
#: the map expansion's own drivable_area layer (MIT BEVFusion's default map
#: class ``drivable_area``) or the union of road segments and lanes (MIT's
#: ``drivable_area*``).
DRIVABLE_AREA_SOURCES = {
    'drivable_area': ('drivable_area',),
    'road_segment+lane': ('road_segment', 'lane'),
}
DEFAULT_DRIVABLE_AREA_SOURCE = 'drivable_area'

#: map class -> map-expansion layers that make it (``drivable_area`` as
#: ``DEFAULT_DRIVABLE_AREA_SOURCE``).
MAP_LAYERS = {
    'drivable_area': DRIVABLE_AREA_SOURCES[DEFAULT_DRIVABLE_AREA_SOURCE],
    'ped_crossing': ('ped_crossing',),
    'walkway': ('walkway',),
    'stop_line': ('stop_line',),
    'carpark_area': ('carpark_area',),
    'divider': ('road_divider', 'lane_divider'),
}

#: camera order of the multi-view inputs (N_cam axis of ``imgs``).
CAMERAS = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
           'CAM_BACK_LEFT', 'CAM_BACK_RIGHT')
