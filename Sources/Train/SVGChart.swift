import Platform

/// A line chart as SVG text, for reports (no dependencies).
public struct SVGChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Vertical markers (e.g. epoch boundaries): x positions and labels.
    public var markers: [(x: Double, label: String)] = []

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]

    /// The chart, 800 x 480 pixels.
    public var svg: String {
        let width = 800.0, height = 480.0
        let left = 70.0, right = 180.0, top = 40.0, bottom = 60.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        var minX = Double.infinity, maxX = -Double.infinity, minY = Double.infinity, maxY = -Double.infinity
        for line in series {
            for point in line.points where point.x.isFinite && point.y.isFinite {
                minX = min(minX, point.x); maxX = max(maxX, point.x)
                minY = min(minY, point.y); maxY = max(maxY, point.y)
            }
        }
        if !minX.isFinite { minX = 0; maxX = 1; minY = 0; maxY = 1 }
        if maxX <= minX { maxX = minX + 1 }
        if maxY <= minY { maxY = minY + 1; minY -= 1 }
        let padY = (maxY - minY) * 0.05
        minY -= padY; maxY += padY
        minX = min(minX, 0)
        func px(_ x: Double) -> String { Format.fixed(left + (x - minX) / (maxX - minX) * plotWidth, 1) }
        func py(_ y: Double) -> String { Format.fixed(top + (1 - (y - minY) / (maxY - minY)) * plotHeight, 1) }
        var text = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        text += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        text += "<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(SVGChart.escape(title))</text>\n"
        // Axes with five ticks each.
        text += "<line x1=\"\(px(minX))\" y1=\"\(py(minY))\" x2=\"\(px(maxX))\" y2=\"\(py(minY))\" stroke=\"black\"/>\n"
        text += "<line x1=\"\(px(minX))\" y1=\"\(py(minY))\" x2=\"\(px(minX))\" y2=\"\(py(maxY))\" stroke=\"black\"/>\n"
        for tick in 0...4 {
            let x = minX + (maxX - minX) * Double(tick) / 4
            let y = minY + (maxY - minY) * Double(tick) / 4
            text += "<text x=\"\(px(x))\" y=\"\(Format.fixed(top + plotHeight + 18, 1))\" text-anchor=\"middle\">\(SVGChart.tickLabel(x))</text>\n"
            text += "<text x=\"\(Format.fixed(left - 6, 1))\" y=\"\(py(y))\" text-anchor=\"end\" dominant-baseline=\"middle\">\(SVGChart.tickLabel(y))</text>\n"
            text += "<line x1=\"\(px(minX))\" y1=\"\(py(y))\" x2=\"\(px(maxX))\" y2=\"\(py(y))\" stroke=\"#ddd\"/>\n"
        }
        for marker in markers where marker.x >= minX && marker.x <= maxX {
            text += "<line x1=\"\(px(marker.x))\" y1=\"\(py(minY))\" x2=\"\(px(marker.x))\" y2=\"\(py(maxY))\" stroke=\"#bbb\" stroke-dasharray=\"3,3\"/>\n"
            text += "<text x=\"\(px(marker.x))\" y=\"\(Format.fixed(top - 4, 1))\" text-anchor=\"middle\" font-size=\"9\" fill=\"#777\">\(SVGChart.escape(marker.label))</text>\n"
        }
        text += "<text x=\"\(Format.fixed(left + plotWidth / 2, 1))\" y=\"\(Int(height - 15))\" text-anchor=\"middle\">\(SVGChart.escape(xLabel))</text>\n"
        text += "<text x=\"16\" y=\"\(Format.fixed(top + plotHeight / 2, 1))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(Format.fixed(top + plotHeight / 2, 1)))\">\(SVGChart.escape(yLabel))</text>\n"
        for (index, line) in series.enumerated() {
            let color = SVGChart.colors[index % SVGChart.colors.count]
            let points = line.points.filter { $0.x.isFinite && $0.y.isFinite }.map { "\(px($0.x)),\(py($0.y))" }.joined(separator: " ")
            text += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            let legendY = top + 10 + Double(index) * 18
            text += "<line x1=\"\(Format.fixed(width - right + 15, 1))\" y1=\"\(Format.fixed(legendY, 1))\" x2=\"\(Format.fixed(width - right + 35, 1))\" y2=\"\(Format.fixed(legendY, 1))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            text += "<text x=\"\(Format.fixed(width - right + 40, 1))\" y=\"\(Format.fixed(legendY, 1))\" dominant-baseline=\"middle\">\(SVGChart.escape(line.name))</text>\n"
        }
        return text + "</svg>\n"
    }

    static func tickLabel(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude >= 1_000_000 { return Format.fixed(value / 1_000_000, 1) + "M" }
        if magnitude >= 10_000 { return Format.fixed(value / 1000, 0) + "k" }
        if magnitude >= 100 { return Format.fixed(value, 0) }
        if magnitude >= 1 { return Format.fixed(value, 1) }
        return Format.fixed(value, 3)
    }

    static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "&": result += "&amp;"
            case "\"": result += "&quot;"
            default: result.append(character)
            }
        }
        return result
    }
}
