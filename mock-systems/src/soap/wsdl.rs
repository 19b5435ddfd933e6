//! `GET {path}?wsdl`: a minimal WSDL 1.1 description of the service (its operations, each taking
//! string parameters and answering a string result), as .asmx services publish.

use quick_xml::escape::escape;

use crate::catalogue::SoapSpec;

/// The service description; `location` is the service URL path.
pub fn describe(spec: &SoapSpec, system_name: &str, location: &str) -> String {
    let ns = escape(&spec.namespace);
    let binding_ns = if spec.version == "1.2" {
        "http://schemas.xmlsoap.org/wsdl/soap12/"
    } else {
        "http://schemas.xmlsoap.org/wsdl/soap/"
    };
    let operations = [
        (
            &spec.submit_method,
            vec![&spec.secret_param, &spec.doc_param, &spec.key_param],
        ),
        (
            &spec.query_method,
            vec![&spec.secret_param, &spec.receipts_param],
        ),
        (
            &spec.lookup_method,
            vec![&spec.secret_param, &spec.key_param],
        ),
    ];
    let mut types = String::new();
    let mut messages = String::new();
    let mut port = String::new();
    let mut binding = String::new();
    for (method, params) in &operations {
        let method = escape(method.as_str());
        let elements: String = params
            .iter()
            .map(|p| {
                format!(
                    "<s:element minOccurs=\"0\" maxOccurs=\"1\" name=\"{}\" type=\"s:string\"/>",
                    escape(p.as_str())
                )
            })
            .collect();
        types.push_str(&format!(
            "<s:element name=\"{method}\"><s:complexType><s:sequence>{elements}</s:sequence></s:complexType></s:element>\
             <s:element name=\"{method}Response\"><s:complexType><s:sequence><s:element minOccurs=\"0\" maxOccurs=\"1\" name=\"{method}Result\" type=\"s:string\"/></s:sequence></s:complexType></s:element>"
        ));
        messages.push_str(&format!(
            "<wsdl:message name=\"{method}SoapIn\"><wsdl:part name=\"parameters\" element=\"tns:{method}\"/></wsdl:message>\
             <wsdl:message name=\"{method}SoapOut\"><wsdl:part name=\"parameters\" element=\"tns:{method}Response\"/></wsdl:message>"
        ));
        port.push_str(&format!(
            "<wsdl:operation name=\"{method}\"><wsdl:input message=\"tns:{method}SoapIn\"/><wsdl:output message=\"tns:{method}SoapOut\"/></wsdl:operation>"
        ));
        binding.push_str(&format!(
            "<wsdl:operation name=\"{method}\"><soap:operation soapAction=\"{ns}{method}\" style=\"document\"/><wsdl:input><soap:body use=\"literal\"/></wsdl:input><wsdl:output><soap:body use=\"literal\"/></wsdl:output></wsdl:operation>"
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\" xmlns:soap=\"{binding_ns}\" xmlns:s=\"http://www.w3.org/2001/XMLSchema\" xmlns:tns=\"{ns}\" targetNamespace=\"{ns}\">\
         <wsdl:documentation>{}</wsdl:documentation>\
         <wsdl:types><s:schema elementFormDefault=\"qualified\" targetNamespace=\"{ns}\">{types}</s:schema></wsdl:types>{messages}\
         <wsdl:portType name=\"ServiceSoap\">{port}</wsdl:portType>\
         <wsdl:binding name=\"ServiceSoap\" type=\"tns:ServiceSoap\"><soap:binding transport=\"http://schemas.xmlsoap.org/soap/http\"/>{binding}</wsdl:binding>\
         <wsdl:service name=\"Service\"><wsdl:port name=\"ServiceSoap\" binding=\"tns:ServiceSoap\"><soap:address location=\"{}\"/></wsdl:port></wsdl:service></wsdl:definitions>\n",
        escape(system_name),
        escape(location)
    )
}
