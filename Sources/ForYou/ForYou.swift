// Everything as one import: `import ForYou` is the engine (`ForYouEngine`) and the service side.
@_exported import ForYouEngine
@_exported import KafkaLog
@_exported import CandidateStore
@_exported import PostgresStore
@_exported import Media
@_exported import FeedServer
@_exported import LiveModels
@_exported import Rescoring
@_exported import LiveRanking
@_exported import Transcoding
@_exported import Studies
@_exported import Workbench
@_exported import Simulator
@_exported import World
